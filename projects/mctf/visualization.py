"""Pictures of which patches a merging ViT fused: every group of patches
that ended up in one token gets one colour, and lines separate the
groups. Works on a :class:`~projects.mctf.models.backbones.mctf_vit.
MergeTrace` index (the merged token holding each input token), so it
shows MCTF's bidirectional merges as well as ToMe's."""
from typing import Tuple

import cv2
import numpy as np

BORDER = (255, 255, 255)


def group_colours(num_groups: int) -> np.ndarray:
    """(num_groups, 3) uint8 RGB colours, far apart in hue for nearby
    group numbers (golden-ratio steps around the hue circle)."""
    hues = (np.arange(num_groups) * 0.618034) % 1.0
    hsv = np.full((1, num_groups, 3), 255, np.uint8)
    hsv[0, :, 0] = hues * 180  # OpenCV's hue runs over 0-179
    hsv[0, :, 1] = 200
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]


def patch_groups(index: np.ndarray, grid: Tuple[int, int],
                 num_extra_tokens: int) -> np.ndarray:
    """(h, w) group number of every patch from the merged-token index of
    every input token (extra tokens first, then the patches row by row);
    groups are renumbered 0, 1, ... in order of first appearance."""
    h, w = grid
    patches = np.asarray(index)[num_extra_tokens:]
    if patches.shape != (h * w, ):
        raise ValueError(f'an index of {num_extra_tokens} extra tokens and '
                         f'a {h}x{w} patch grid has {num_extra_tokens + h * w}'
                         f' entries, got {np.asarray(index).shape}')
    _, first, inverse = np.unique(
        patches, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))  # unique value -> appearance rank
    return order[inverse].reshape(h, w)


def merge_picture(image: np.ndarray,
                  groups: np.ndarray,
                  scale: int = 4,
                  alpha: float = 0.6) -> np.ndarray:
    """The token groups over an image.

    Args:
        image (np.ndarray): (H, W, 3) uint8 RGB, H and W multiples of the
            group grid.
        groups (np.ndarray): (h, w) group number of every patch
            (:func:`patch_groups`).
        scale (int): Upscaling of the picture. Defaults to 4.
        alpha (float): Weight of a group's colour over the pixels of a
            patch that was merged with others; a patch left alone keeps its
            pixels.

    Returns:
        np.ndarray: (H * scale, W * scale, 3) uint8 RGB.
    """
    height, width = image.shape[:2]
    h, w = groups.shape
    if height % h or width % w:
        raise ValueError(f'a {height}x{width} image cannot be cut into a '
                         f'{h}x{w} patch grid')
    ph, pw = height // h, width // w
    sizes = np.bincount(groups.ravel())
    colours = group_colours(len(sizes)).astype(np.float32)
    per_pixel = np.repeat(np.repeat(groups, ph, 0), pw, 1)
    merged = (sizes[per_pixel] > 1)[..., None]
    tinted = (1 - alpha) * image + alpha * colours[per_pixel]
    picture = np.where(merged, tinted, image).round().astype(np.uint8)
    picture = np.repeat(np.repeat(picture, scale, 0), scale, 1)
    # a line on every patch edge between two groups
    sy, sx = ph * scale, pw * scale
    for y in range(h):
        for x in range(w):
            if x + 1 < w and groups[y, x] != groups[y, x + 1]:
                picture[y * sy:(y + 1) * sy, (x + 1) * sx - 1] = BORDER
            if y + 1 < h and groups[y, x] != groups[y + 1, x]:
                picture[(y + 1) * sy - 1, x * sx:(x + 1) * sx] = BORDER
    return picture
