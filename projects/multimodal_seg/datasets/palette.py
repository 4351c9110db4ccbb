"""Deterministic class palettes."""
from typing import List


def bit_interleaved_palette(num_classes: int) -> List[List[int]]:
    """Colours of the PASCAL-VOC colour-map construction: the bits of the
    class index are spread over the high bits of R, G and B, so neighbouring
    indices get clearly different colours. Index 0 is black."""
    palette = []
    for index in range(num_classes):
        rgb = [0, 0, 0]
        value = index
        for shift in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((value >> channel) & 1) << shift
            value >>= 3
        palette.append(rgb)
    return palette
