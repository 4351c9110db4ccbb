"""A deterministic synthetic RGB / depth / event / LiDAR segmentation set in
which every modality is needed.

The scene is the one of the synthetic RGB-D set (slanted grey floor, 2-4
rectangles or ellipses of one size distribution for every class; the RGB
has no shading, the depth no colour). Each object has four attributes, each
seen by exactly one modality:

* colour, red or blue: only in RGB,
* shape, a block standing out of the floor or a hole sunk into it: only in
  depth (offset from the local floor depth),
* flicker, static or flickering: only in the event frame (a flickering
  object fires events over its whole area; every object, static or not,
  fires events along its outline, and there is background noise),
* reflectivity, matte (as the floor) or retro-reflective: only in the
  LiDAR intensity (sparse beam rows; no range, so no height cue).

Classes (attributes not listed are red / block / static / matte):

=====  =====================  ======  =====  ==========  ===========
index  name                   RGB     depth  event       LiDAR
=====  =====================  ======  =====  ==========  ===========
0      floor                  grey    plane  noise       matte
1      red block              red     block  static      matte
2      blue block             blue    block  static      matte
3      red hole               red     hole   static      matte
4      flickering red block   red     block  flickering  matte
5      reflective red block   red     block  static      reflective
=====  =====================  ======  =====  ==========  ===========

Classes 1 and 2 differ only in RGB, 1 and 3 only in depth, 1 and 4 only in
the events, 1 and 5 only in the LiDAR: without any one modality one pair
cannot be told apart, so full accuracy needs all four.

Files (canonical layout plus ``event/`` and ``lidar/``): ``rgb/*.png``
(8-bit colour), ``depth/*.png`` (16-bit, mm, 0 = no measurement),
``event/*.png`` (8-bit colour, blue = positive and red = negative events on
black, at **half** the RGB resolution as low-resolution event cameras, to be
resized with nearest like DELIVER's events), ``lidar/*.png`` (8-bit grey,
intensity on every second row, 0 = no return), ``label/*.png``.
"""
from typing import Dict, Sequence, Tuple

import numpy as np
from mmseg.registry import DATASETS

from .multimodal_seg_dataset import MultiModalSegDataset
from .synthetic_rgbd import (SYNTHETIC_PALETTE, finish_rgbd, object_mask,
                             paint_rgbd, render_background,
                             write_synthetic_set)

SYNTHETIC_MM_CLASSES = ('floor', 'red block', 'blue block', 'red hole',
                        'flickering red block', 'reflective red block')
# floor, red block, blue block, red hole as in the RGB-D set; then yellow
# (flickering) and cyan (reflective)
SYNTHETIC_MM_PALETTE = [
    SYNTHETIC_PALETTE[0], SYNTHETIC_PALETTE[1], SYNTHETIC_PALETTE[3],
    SYNTHETIC_PALETTE[2], [240, 200, 40], [60, 220, 200]
]
SYNTHETIC_MM_MODALITIES = ('rgb', 'depth', 'event', 'lidar')
MULTIMODAL_GENERATOR_VERSION = 1

# class -> (colour, depth direction (-1 block, +1 hole), flickers, reflects)
MM_CLASS_ATTRIBUTES: Dict[int, Tuple[str, int, bool, bool]] = {
    1: ('red', -1, False, False),
    2: ('blue', -1, False, False),
    3: ('red', 1, False, False),
    4: ('red', -1, True, False),
    5: ('red', -1, False, True),
}
# event firing probabilities: background noise, object outline, interior
# of a flickering object
EVENT_NOISE, EVENT_EDGE, EVENT_FLICKER = 0.02, 0.5, 0.6
EVENT_STRIDE = 2  # event frames are stored at 1 / EVENT_STRIDE resolution


def outline(label: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose 4-neighbourhood holds another label."""
    edge = np.zeros(label.shape, bool)
    diff_y = label[1:] != label[:-1]
    diff_x = label[:, 1:] != label[:, :-1]
    edge[1:] |= diff_y
    edge[:-1] |= diff_y
    edge[:, 1:] |= diff_x
    edge[:, :-1] |= diff_x
    return edge


def render_event_frame(rng: np.random.Generator, label: np.ndarray,
                       flicker: np.ndarray) -> np.ndarray:
    """Event frame (H, W, 3) uint8 in RGB order at full resolution: each
    pixel fires with probability EVENT_NOISE, EVENT_EDGE on an object
    outline or EVENT_FLICKER inside a flickering object (the largest
    applies), with a random polarity (blue positive, red negative)."""
    prob = np.full(label.shape, EVENT_NOISE, np.float32)
    prob[flicker] = EVENT_FLICKER
    prob = np.maximum(prob, np.where(outline(label), EVENT_EDGE, 0.))
    fired = rng.random(label.shape) < prob
    positive = rng.random(label.shape) < 0.5
    frame = np.zeros(label.shape + (3, ), np.uint8)
    frame[fired & positive, 2] = 255
    frame[fired & ~positive, 0] = 255
    return frame


def render_lidar(rng: np.random.Generator,
                 reflectivity: np.ndarray,
                 dropout: float = 0.1) -> np.ndarray:
    """LiDAR intensity (H, W) uint8 projected on the image: one beam on
    every second row (random phase), intensity = reflectivity + noise,
    0 = no return (off-beam rows and ``dropout`` of the beam pixels)."""
    h, w = reflectivity.shape
    beams = np.zeros((h, w), bool)
    beams[int(rng.integers(0, 2))::2] = True
    beams &= rng.random((h, w)) >= dropout
    intensity = reflectivity + rng.normal(0, 6, (h, w))
    lidar = np.where(beams, np.clip(intensity, 1, 255), 0)
    return lidar.astype(np.uint8)


def render_multimodal_sample(rng: np.random.Generator,
                             size: Tuple[int, int]) -> Dict[str, np.ndarray]:
    """Render one sample.

    Returns:
        dict: ``rgb`` (H, W, 3) uint8 RGB order; ``depth`` (H, W) uint16
        mm, 0 = no measurement; ``event`` (ceil(H/2), ceil(W/2), 3) uint8
        RGB order; ``lidar`` (H, W) uint8, 0 = no return; ``label``
        (H, W) uint8 (see the module's class table).
    """
    grid, floor, depth, rgb = render_background(rng, size)
    label = np.zeros(floor.shape, np.uint8)
    flicker = np.zeros(floor.shape, bool)
    matte = rng.uniform(50, 90)  # floor and matte objects alike
    reflectivity = np.full(floor.shape, matte, np.float32)
    for _ in range(rng.integers(2, 5)):
        cls = int(rng.integers(1, len(SYNTHETIC_MM_CLASSES)))
        colour, direction, flickers, reflects = MM_CLASS_ATTRIBUTES[cls]
        mask = object_mask(rng, grid)
        paint_rgbd(rng, rgb, depth, floor, mask, colour, direction)
        flicker[mask] = flickers
        reflectivity[mask] = rng.uniform(170, 230) if reflects else matte
        label[mask] = cls
    rgb, depth = finish_rgbd(rng, rgb, depth)
    event = render_event_frame(rng, label, flicker)
    lidar = render_lidar(rng, reflectivity)
    return dict(
        rgb=rgb,
        depth=depth,
        event=event[::EVENT_STRIDE, ::EVENT_STRIDE],
        lidar=lidar,
        label=label)


def generate_synthetic_multimodal(root: str,
                                  num_train: int = 300,
                                  num_test: int = 60,
                                  image_size: Tuple[int, int] = (64, 64),
                                  seed: int = 0) -> str:
    """Write the 4-modality set to ``root`` (``rgb/ depth/ event/ lidar/
    label/ train.txt test.txt``) unless it is already there with the same
    parameters; race-safe as :func:`generate_synthetic_rgbd`."""
    params = dict(
        kind='rgb-depth-event-lidar',
        version=MULTIMODAL_GENERATOR_VERSION,
        num_train=num_train,
        num_test=num_test,
        image_size=list(image_size),
        seed=seed)

    def render(rng):
        sample = render_multimodal_sample(rng, tuple(image_size))
        # OpenCV writes BGR
        sample['rgb'] = sample['rgb'][..., ::-1]
        sample['event'] = sample['event'][..., ::-1]
        return sample

    return write_synthetic_set(root, params, num_train, num_test, render)


@DATASETS.register_module()
class SyntheticMultiModalDataset(MultiModalSegDataset):
    """The synthetic RGB / depth / event / LiDAR set of this module,
    generated into ``data_root`` on first use.

    Load depth with ``LoadDepthFromFile``, the events with
    ``LoadModalityImageFromFile(modality='event', resize_to_img=True)``
    (they are stored at half resolution) and the LiDAR with
    ``LoadModalityImageFromFile(modality='lidar')``.

    Args:
        modalities (Sequence[str]): Any of ``'rgb'``, ``'depth'``,
            ``'event'``, ``'lidar'``. Defaults to all four.
        num_train (int): Training images. Defaults to 300.
        num_test (int): Test images. Defaults to 60.
        image_size (tuple[int, int]): (H, W). Defaults to (64, 64).
        seed (int): Generator seed. Defaults to 0.
        **kwargs: Passed to :class:`MultiModalSegDataset`.
    """
    METAINFO = dict(classes=SYNTHETIC_MM_CLASSES, palette=SYNTHETIC_MM_PALETTE)

    def __init__(self,
                 data_root: str,
                 modalities: Sequence[str] = SYNTHETIC_MM_MODALITIES,
                 num_train: int = 300,
                 num_test: int = 60,
                 image_size: Tuple[int, int] = (64, 64),
                 seed: int = 0,
                 **kwargs) -> None:
        unknown = [m for m in modalities if m not in SYNTHETIC_MM_MODALITIES]
        if unknown:
            raise ValueError(
                f'{type(self).__name__}: unknown modalities {unknown}; '
                f'expected a subset of {SYNTHETIC_MM_MODALITIES}')
        generate_synthetic_multimodal(data_root, num_train, num_test,
                                      tuple(image_size), seed)
        kwargs.setdefault('modality_prefix',
                          dict(depth='depth', event='event', lidar='lidar'))
        super().__init__(data_root=data_root, modalities=modalities, **kwargs)
