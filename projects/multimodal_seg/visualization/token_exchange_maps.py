"""Maps of the tokens each modality took from the others in TokenFusion's
exchange (the paper's Figure 4), drawn from a model's recorded scores.

A packed sample (the test pipeline's output) is run through the backbone in
eval mode on the whole image; for each chosen fused block every modality's
panel highlights the tokens whose score fell below θ (the ``threshold`` of
the backbone's ``TokenExchange`` layer), coloured by the modality the token
came from (the other one for M = 2, the layer's group allocation for
M > 2). Token cells are upsampled to pixels by nearest neighbour on the
token grid of the block's stage. Used by
``tools/analysis_tools/visualize_token_exchange.py`` and by
:class:`MultiModalSegInferencer` (``fusion_maps=True``).
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from mmengine.dataset import pseudo_collate

from projects.fusion_math.token_exchange import allocation_for_grid
from ..models.fusion_layers import TokenExchange
from .multimodal_visualizer import colourize_depth

# highlight colour (RGB) of the tokens taken FROM modality k
SOURCE_COLOURS = ((255, 0, 255), (0, 255, 0), (255, 160, 0), (0, 200, 255),
                  (255, 255, 255), (255, 0, 0))
SOURCE_COLOUR_NAMES = ('magenta', 'green', 'orange', 'cyan', 'white', 'red')
FONT = cv2.FONT_HERSHEY_SIMPLEX

# ----------------------------------------------------------------------------
# masks


def stage_of(layer: str) -> int:
    """``'block2.1'`` -> 1 (0-based stage index)."""
    try:
        return int(layer.split('.')[0][len('block'):]) - 1
    except ValueError:
        raise ValueError(f'{layer!r} is not a block name like "block2.1"')


def default_layers(fused_blocks: Sequence[str]) -> List[str]:
    """The last fused block of each fused stage."""
    last: Dict[int, str] = {}
    for name in fused_blocks:
        last[stage_of(name)] = name  # fused_blocks is in forward order
    return [last[s] for s in sorted(last)]


def exchange_maps(scores,
                  threshold: float,
                  grid: Tuple[int, int],
                  allocation: Optional[torch.Tensor] = None) -> np.ndarray:
    """Token maps of one sample at one fused block.

    Args:
        scores (Tensor | ndarray): (M, N) token scores, N = H_s * W_s.
        threshold (float): θ; a token of modality m is exchanged where its
            own score is below θ.
        grid (tuple): (H_s, W_s), the token grid of the block's stage.
        allocation (Tensor, optional): (M, N) source modality of every
            position (the backbone's group allocation for M > 2). For M = 2
            the source is the other modality.

    Returns:
        ndarray int64 (M, H_s, W_s): -1 where modality m kept its token,
        else the index of the modality it took the token from.
    """
    scores = torch.as_tensor(scores).detach().cpu()
    m, n = scores.shape
    h, w = grid
    if n != h * w:
        raise ValueError(f'{n} scores do not fit a {h}x{w} token grid')
    if allocation is None:
        if m != 2:
            raise ValueError(f'{m} modalities need a group allocation')
        source = torch.tensor([[1], [0]]).expand(2, n)
    else:
        source = torch.as_tensor(allocation).cpu().reshape(m, n)
    maps = torch.where(scores < threshold, source, torch.full_like(source, -1))
    return maps.reshape(m, h, w).numpy().astype(np.int64)


def upsample_token_map(token_map: np.ndarray, size: Tuple[int,
                                                          int]) -> np.ndarray:
    """Nearest upsampling of a (..., H_s, W_s) token map to (..., H, W)
    pixels: pixel (y, x) shows token (y * H_s // H, x * W_s // W)."""
    h_s, w_s = token_map.shape[-2:]
    h, w = size
    rows = np.arange(h) * h_s // h
    cols = np.arange(w) * w_s // w
    return token_map[..., rows[:, None], cols[None, :]]


def overlay_exchange(image: np.ndarray,
                     pixel_map: np.ndarray,
                     colours: Sequence[Tuple[int, int, int]] = SOURCE_COLOURS,
                     alpha: float = 0.6) -> np.ndarray:
    """Blend ``colours[k]`` over the pixels of ``image`` (H, W, 3) uint8
    where ``pixel_map`` (H, W) is k >= 0; pixels with -1 stay unchanged."""
    if image.shape[:2] != pixel_map.shape:
        raise ValueError(f'image {image.shape[:2]} and map '
                         f'{pixel_map.shape} differ in size')
    out = image.copy()
    for k in np.unique(pixel_map[pixel_map >= 0]):
        where = pixel_map == k
        colour = np.asarray(colours[k % len(colours)], np.float32)
        blended = (1 - alpha) * image[where].astype(np.float32) + \
            alpha * colour
        out[where] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    return out


# ----------------------------------------------------------------------------
# drawing


def modality_images(inputs: torch.Tensor, modalities: Sequence[str],
                    channels: Sequence[int]) -> List[np.ndarray]:
    """Displayable (H, W, 3) RGB uint8 images of a packed sample
    (``PackMultiModalSegInputs`` output: BGR image, raw depth, ...)."""
    parts = inputs.detach().cpu().float().split(list(channels), dim=0)
    images = []
    for name, part in zip(modalities, parts):
        array = part.permute(1, 2, 0).numpy()
        if name == 'rgb' or array.shape[2] == 3:  # mmcv loads BGR
            image = np.clip(np.round(array[..., ::-1]), 0, 255)
        elif 'depth' in name:
            image = colourize_depth(array[..., 0])
        else:
            grey = array[..., 0]
            low, high = grey.min(), grey.max()
            grey = (grey - low) / max(high - low, 1e-6) * 255
            image = np.repeat(grey[..., None], 3, axis=2)
        images.append(np.ascontiguousarray(image).astype(np.uint8))
    return images


def put_text_fit(
    canvas: np.ndarray,
    text: str,
    box: Tuple[int, int, int, int],
    colour: Tuple[int, int, int] = (0, 0, 0)
) -> None:
    """Write ``text`` left-aligned, vertically centred into ``box`` (y0, x0,
    y1, x1) of ``canvas``, shrunk to fit."""
    y0, x0, y1, x1 = box
    (tw, th), _ = cv2.getTextSize(text, FONT, 1.0, 1)
    scale = min(0.6, 0.6 * (y1 - y0) / th, (x1 - x0 - 4) / max(tw, 1))
    (tw, th), base = cv2.getTextSize(text, FONT, scale, 1)
    y = y0 + (y1 - y0 + th) // 2
    cv2.putText(canvas, text, (x0 + 2, y), FONT, scale, colour, 1, cv2.LINE_AA)


class FigureLayout:
    """Geometry of a figure: a header band, then per row a title band and
    the panels, columns and rows separated by ``gap`` pixels.

    Args:
        num_rows (int): Layers.
        num_cols (int): Modalities.
        panel_size (tuple): (h, w) of a panel after upscaling.
    """
    header = 44
    title = 20
    gap = 6

    def __init__(self, num_rows: int, num_cols: int,
                 panel_size: Tuple[int, int]) -> None:
        self.num_rows = num_rows
        self.num_cols = num_cols
        self.panel_h, self.panel_w = panel_size

    @property
    def size(self) -> Tuple[int, int]:
        """(H, W) of the figure."""
        height = self.header + self.num_rows * (
            self.title + self.panel_h + self.gap)
        width = self.num_cols * (self.panel_w + self.gap) + self.gap
        return height, width

    def title_box(self, row: int, col: int) -> Tuple[int, int, int, int]:
        y0, x0, _, x1 = self.panel_box(row, col)
        return y0 - self.title, x0, y0, x1

    def panel_box(self, row: int, col: int) -> Tuple[int, int, int, int]:
        """(y0, x0, y1, x1) of panel (row, col)."""
        y0 = self.header + row * (self.title + self.panel_h +
                                  self.gap) + self.title
        x0 = self.gap + col * (self.panel_w + self.gap)
        return y0, x0, y0 + self.panel_h, x0 + self.panel_w


def auto_scale(size: Tuple[int, int], target: int = 256) -> int:
    return max(1, target // max(1, min(size)))


def draw_figure(images: Sequence[np.ndarray],
                pixel_maps: Sequence[np.ndarray],
                titles: Sequence[Sequence[str]],
                header: Sequence[str],
                scale: int = 1,
                alpha: float = 0.6) -> np.ndarray:
    """Compose a figure (RGB uint8).

    Args:
        images (list[ndarray]): M modality images (H, W, 3) RGB.
        pixel_maps (list[ndarray]): per row (layer) an (M, H, W) source map
            as :func:`upsample_token_map` returns.
        titles (list[list[str]]): per row, M panel titles.
        header (list[str]): up to 2 header lines.
        scale (int): Integer upscaling of the panels (nearest).
    """
    h, w = images[0].shape[:2]
    layout = FigureLayout(len(pixel_maps), len(images), (h * scale, w * scale))
    canvas = np.full(layout.size + (3, ), 255, np.uint8)
    lines = list(header)[:2]
    for i, line in enumerate(lines):
        band = layout.header // 2
        put_text_fit(canvas, line,
                     (i * band, layout.gap, (i + 1) * band, canvas.shape[1]))
    for row, maps in enumerate(pixel_maps):
        for col, image in enumerate(images):
            panel = overlay_exchange(image, maps[col], alpha=alpha)
            if scale > 1:
                panel = np.repeat(np.repeat(panel, scale, 0), scale, 1)
            y0, x0, y1, x1 = layout.panel_box(row, col)
            canvas[y0:y1, x0:x1] = panel
            put_text_fit(canvas, titles[row][col], layout.title_box(row, col))
    return canvas


# ----------------------------------------------------------------------------
# model and data


def token_exchange(backbone) -> TokenExchange:
    """The backbone's TokenExchange fusion layer."""
    for layer in getattr(backbone, 'fusion_layers', ()):
        if isinstance(layer, TokenExchange):
            return layer
    raise TypeError(f'{type(backbone).__name__} has no TokenExchange fusion '
                    'layer (backbone.fusion): no token exchange to draw')


@torch.no_grad()
def record_scores(backbone, inputs: torch.Tensor):
    """Run a fused MiT with a :class:`TokenExchange` layer on a
    preprocessed batch of one sample and read its scores.

    Args:
        backbone: The fused MiT (``FusedMiT``).
        inputs (Tensor): (1, sum of channels, H, W), what the backbone is
            fed in testing.

    Returns:
        tuple: scores (list of (M, N_s) per fused block) and token grids
        ((H_s, W_s) per stage).
    """
    grids: Dict[int, tuple] = {}
    handles = []
    s = 0
    while hasattr(backbone, f'patch_embed{s + 1}'):

        def record(module, args, output, stage=s):
            grids[stage] = tuple(int(v) for v in output[1])

        handles.append(
            getattr(backbone,
                    f'patch_embed{s + 1}').register_forward_hook(record))
        s += 1
    try:
        backbone(inputs)
    finally:
        for handle in handles:
            handle.remove()
    scores = token_exchange(backbone).scores
    return [sc[:, 0].cpu() for sc in scores], grids


def exchange_figure(backbone,
                    inputs: torch.Tensor,
                    images: Sequence[np.ndarray],
                    modalities: Sequence[str],
                    layers: Sequence[str],
                    name: str,
                    scale: int = 0,
                    alpha: float = 0.6):
    """Figure and per-layer exchanged fractions of one sample, for any
    model whose fused MiT is ``backbone``.

    Args:
        backbone: The fused MiT with a :class:`TokenExchange` layer.
        inputs (Tensor): (1, C, H_in, W_in) preprocessed input (H_in, W_in
            may include padding below and right of the image).
        images (list[ndarray]): One displayable (H, W, 3) RGB uint8 image
            per modality, H <= H_in, W <= W_in.
        modalities (list[str]): Their names.
        layers (list[str]): Fused blocks to draw, e.g. ``'block2.0'``
            (an error names the others).
        name (str): The sample's name in the header.

    Returns:
        tuple: figure (RGB uint8), ``{layer: {modality: fraction}}``.
    """
    layer_of = token_exchange(backbone)
    blocks = layer_of.block_names
    unknown = [layer for layer in layers if layer not in blocks]
    if unknown or not layers:
        raise ValueError(f'{unknown or "no layer"}: choose fused blocks to '
                         f'draw from {blocks}')
    height, width = images[0].shape[:2]
    scores, grids = record_scores(backbone, inputs)
    padded = tuple(inputs.shape[-2:])
    threshold = layer_of.threshold
    allocation = layer_of.allocation
    pixel_maps, titles, fractions = [], [], {}
    for layer in layers:
        stage = stage_of(layer)
        grid = grids[stage]
        source = None
        if allocation is not None:
            source = allocation_for_grid(allocation[stage].cpu(), *grid)
        maps = exchange_maps(scores[blocks.index(layer)], threshold, grid,
                             source)
        pixels = upsample_token_map(maps, padded)[:, :height, :width]
        pixel_maps.append(pixels)
        fractions[layer] = {
            modality: float((maps[m] >= 0).mean())
            for m, modality in enumerate(modalities)
        }
        titles.append([
            f'{layer} {modality}: {100 * fractions[layer][modality]:.1f}% '
            f'taken ({grid[0]}x{grid[1]})' for modality in modalities
        ])
    legend = ', '.join(f'{modality} = {SOURCE_COLOUR_NAMES[k]}'
                       for k, modality in enumerate(modalities))
    header = [
        f'{name}  theta={threshold:g}  tokens each modality took from '
        'another', f'highlight = source modality: {legend}'
    ]
    figure = draw_figure(images, pixel_maps, titles, header, scale
                         or auto_scale((height, width)), alpha)
    return figure, fractions


def visualize_sample(model,
                     data: dict,
                     layers: Sequence[str],
                     scale: int = 0,
                     alpha: float = 0.6,
                     name: Optional[str] = None):
    """:func:`exchange_figure` of a segmentor on one packed sample (the
    test pipeline's output), preprocessed as in testing and run on the
    whole image (``name`` in the header: default the file name of its
    image).

    Returns:
        tuple: figure (RGB uint8), ``{layer: {modality: fraction}}``.
    """
    meta = data['data_samples'].metainfo
    modalities = tuple(meta['modalities'])
    images = modality_images(data['inputs'], modalities,
                             meta['modality_channels'])
    batch = model.data_preprocessor(pseudo_collate([data]), False)
    sample = name or osp.basename(meta.get('img_path') or '?')
    return exchange_figure(model.backbone, batch['inputs'], images, modalities,
                           layers, str(sample), scale, alpha)
