"""The tokens each source took from the others in a TokenFusion
translation generator (the paper's Figures 4 and 6 for translation).

The segmentation package draws these maps for any fused MiT
(:func:`exchange_figure`); here the fused MiT is the generator's encoder
and the panels are the sources as the generator sees them, in [-1, 1]
mapped to 0..255.
"""
from typing import List, Optional, Sequence

import numpy as np
import torch
from mmengine.dataset import pseudo_collate

from projects.multimodal_seg.visualization.token_exchange_maps import (
    default_layers, exchange_figure, token_exchange)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) RGB uint8 (values outside
    [-1, 1] clipped)."""
    array = (image.detach().cpu().float().clamp(-1, 1) + 1) * 127.5
    return np.round(array.permute(1, 2, 0).numpy()).astype(np.uint8)


def frame_name(frame: str) -> str:
    """A frame's split-list line without its domain parts:
    ``'cauthron/{domain}/point_3_view_1_domain_{domain}.png'`` ->
    ``'cauthron/point_3_view_1'``."""
    return frame.replace('{domain}/', '').replace('_domain_{domain}.png', '')


def source_images(inputs: torch.Tensor, num_sources: int) -> List[np.ndarray]:
    """The M sources of a packed sample, ``inputs`` (M * 3, H, W) in
    [-1, 1], as displayable (H, W, 3) RGB uint8 images."""
    if inputs.shape[0] != 3 * num_sources:
        raise ValueError(f'{inputs.shape[0]} input channels for '
                         f'{num_sources} three-channel sources')
    return [to_uint8(part) for part in inputs.split(3, dim=0)]


@torch.no_grad()
def translation_exchange_figure(model,
                                data: dict,
                                layers: Optional[Sequence[str]] = None,
                                scale: int = 0,
                                alpha: float = 0.6):
    """Token-exchange figure of a :class:`MultiStreamTranslator` on one
    packed sample (``PackTranslationInputs`` output).

    Args:
        model: The translator, in eval mode; its generator's encoder must
            have a ``TokenExchange`` fusion layer.
        data (dict): ``inputs`` (M * 3, H, W) and ``data_samples`` with the
            ``sources`` (and ``frame``, the header's name) in its metainfo.
        layers (list[str], optional): Fused blocks to draw (default: the
            last fused block of each stage, where the reference fuses).

    Returns:
        tuple: figure (RGB uint8), ``{layer: {source: fraction}}``.
    """
    meta = data['data_samples'].metainfo
    missing = [key for key in ('sources', 'frame') if key not in meta]
    if missing:
        raise KeyError(f'the data sample has no {missing} in its metainfo '
                       '(pack it with PackTranslationInputs)')
    sources = tuple(meta['sources'])
    encoder = model.generator.encoder
    layers = layers or default_layers(token_exchange(encoder).block_names)
    batch = model.data_preprocessor(pseudo_collate([data]), False)
    images = source_images(data['inputs'], len(sources))
    return exchange_figure(encoder, batch['inputs'], images, sources, layers,
                           frame_name(meta['frame']), scale, alpha)
