"""A deterministic synthetic RGB-D segmentation set that needs both
modalities.

Every image shows a slanted, textured grey floor with 2-4 objects. An object
is red or blue (seen only in RGB) and is a block standing out of the floor or
a hole sunk into it (seen only in depth, as an offset from the local floor
depth; the RGB has no shading). Its class is the pair (colour, shape):

* RGB alone cannot tell a red block from a red hole,
* depth alone cannot tell a red block from a blue block,
* RGB and depth together separate all five classes.

Object outlines (rectangles and ellipses of random size) are drawn from the
same distribution for every class, so the outline carries no class cue.
"""
import os
import os.path as osp
from typing import Callable, Tuple

import cv2
import numpy as np
from mmseg.registry import DATASETS

from projects.common.generated_data import begin_generation, finish_generation
from .multimodal_seg_dataset import MultiModalSegDataset

SYNTHETIC_CLASSES = ('floor', 'red block', 'red hole', 'blue block',
                     'blue hole')
SYNTHETIC_PALETTE = [[128, 128, 128], [230, 60, 60], [120, 20, 20],
                     [60, 60, 230], [20, 20, 120]]
GENERATOR_VERSION = 2

_COLOURS = {  # RGB ranges (low, high) of the two object colours
    'red': ((170, 35, 35), (230, 80, 80)),
    'blue': ((35, 55, 170), (80, 100, 230)),
}
_CLASS_DEFS = {1: ('red', -1), 2: ('red', 1), 3: ('blue', -1), 4: ('blue', 1)}


def render_background(rng: np.random.Generator, size: Tuple[int, int]):
    """The empty scene: a slanted floor plane with sensor noise, seen by an
    untextured grey camera image.

    Returns:
        tuple: ``grid`` (yy, xx) float32 pixel coordinates, ``floor``
        (H, W) noise-free floor depth (mm), ``depth`` (H, W) float measured
        depth, ``rgb`` (H, W, 3) float32 image.
    """
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    floor = (
        rng.uniform(1500, 3500) + rng.uniform(-4, 4) * (xx - w / 2) +
        rng.uniform(-4, 4) * (yy - h / 2))
    depth = floor + rng.normal(0, 6, (h, w))
    grey = rng.uniform(80, 180)
    rgb = np.empty((h, w, 3), np.float32)
    rgb[:] = grey + rng.uniform(-15, 15, 3)
    return (yy, xx), floor, depth, rgb


def object_mask(rng: np.random.Generator, grid: tuple) -> np.ndarray:
    """(H, W) bool mask of a rectangle or an ellipse of random size and
    position, drawn from one distribution for every class."""
    yy, xx = grid
    h, w = yy.shape
    oh, ow = rng.integers(max(6, h // 6), max(8, h // 2.6), 2)
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    if rng.random() < 0.5:
        return (np.abs(yy - cy) <= oh / 2) & (np.abs(xx - cx) <= ow / 2)
    return ((yy - cy) / (oh / 2))**2 + ((xx - cx) / (ow / 2))**2 <= 1


def paint_rgbd(rng: np.random.Generator, rgb: np.ndarray, depth: np.ndarray,
               floor: np.ndarray, mask: np.ndarray, colour: str,
               direction: int) -> None:
    """Give the pixels of ``mask`` one colour of ``colour`` (RGB only) and a
    depth offset of 400-900 mm from the floor, towards the camera
    (``direction`` -1, a block) or away from it (+1, a hole)."""
    low, high = _COLOURS[colour]
    rgb[mask] = rng.uniform(low, high)
    depth[mask] = floor[mask] + direction * rng.uniform(400, 900)


def finish_rgbd(rng: np.random.Generator, rgb: np.ndarray, depth: np.ndarray):
    """Camera noise and missing depth measurements (depth 0, as real
    sensors); returns ``rgb`` uint8 and ``depth`` uint16 (mm)."""
    rgb += rng.normal(0, 8, rgb.shape)
    holes = rng.random(depth.shape) < 0.01
    depth[holes] = 0
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    return rgb, np.clip(depth, 0, 65535).astype(np.uint16)


def render_sample(rng: np.random.Generator, size: Tuple[int, int]):
    """Render one sample.

    Returns:
        tuple: ``rgb`` (H, W, 3) uint8 in RGB order, ``depth`` (H, W) uint16
        millimetres with 0 = no measurement, ``label`` (H, W) uint8.
    """
    grid, floor, depth, rgb = render_background(rng, size)
    label = np.zeros(floor.shape, np.uint8)
    for _ in range(rng.integers(2, 5)):
        cls = int(rng.integers(1, 5))
        mask = object_mask(rng, grid)
        paint_rgbd(rng, rgb, depth, floor, mask, *_CLASS_DEFS[cls])
        label[mask] = cls
    rgb, depth = finish_rgbd(rng, rgb, depth)
    return rgb, depth, label


def write_synthetic_set(root: str, params: dict, num_train: int, num_test: int,
                        render: Callable) -> str:
    """Write a generated set to ``root`` unless it is already there with the
    same ``params`` (race-safe, see :mod:`projects.common.generated_data`).

    ``render(rng)`` returns one sample as a dict ``folder -> array``, each
    array written unchanged as ``<folder>/<name>.png`` (colour arrays in
    OpenCV's BGR order); the first ``num_train`` samples are listed in
    ``train.txt``, the next ``num_test`` in ``test.txt``. The generator is
    seeded with ``params['seed']``.
    """
    tmp = begin_generation(root, params)
    if tmp is None:
        return root
    rng = np.random.default_rng(params['seed'])
    names = {'train': [], 'test': []}
    for index in range(num_train + num_test):
        split = 'train' if index < num_train else 'test'
        name = f'{index:05d}'
        for folder, array in render(rng).items():
            os.makedirs(osp.join(tmp, folder), exist_ok=True)
            cv2.imwrite(osp.join(tmp, folder, name + '.png'), array)
        names[split].append(name)
    for split, split_names in names.items():
        with open(osp.join(tmp, f'{split}.txt'), 'w') as f:
            f.write('\n'.join(split_names) + '\n')
    return finish_generation(tmp, root, params)


def generate_synthetic_rgbd(root: str,
                            num_train: int = 300,
                            num_test: int = 60,
                            image_size: Tuple[int, int] = (64, 64),
                            seed: int = 0) -> str:
    """Write the synthetic set to ``root`` in the canonical layout (``rgb/``,
    ``depth/``, ``label/``, ``train.txt``, ``test.txt``) unless it is
    already there with the same parameters. Safe when several processes
    call it at once (each writes a private folder, the first rename wins).
    """
    params = dict(
        version=GENERATOR_VERSION,
        num_train=num_train,
        num_test=num_test,
        image_size=list(image_size),
        seed=seed)

    def render(rng):
        rgb, depth, label = render_sample(rng, tuple(image_size))
        return dict(rgb=rgb[..., ::-1], depth=depth, label=label)

    return write_synthetic_set(root, params, num_train, num_test, render)


@DATASETS.register_module()
class SyntheticRGBDDataset(MultiModalSegDataset):
    """The synthetic RGB-D set of this module, generated into ``data_root``
    on first use (canonical layout, so the loading path is the one of the
    real datasets).

    Args:
        num_train (int): Training images. Defaults to 300.
        num_test (int): Test images. Defaults to 60.
        image_size (tuple[int, int]): (H, W). Defaults to (64, 64).
        seed (int): Generator seed. Defaults to 0.
        **kwargs: Passed to :class:`MultiModalSegDataset`.
    """
    METAINFO = dict(classes=SYNTHETIC_CLASSES, palette=SYNTHETIC_PALETTE)

    def __init__(self,
                 data_root: str,
                 num_train: int = 300,
                 num_test: int = 60,
                 image_size: Tuple[int, int] = (64, 64),
                 seed: int = 0,
                 **kwargs) -> None:
        generate_synthetic_rgbd(data_root, num_train, num_test,
                                tuple(image_size), seed)
        super().__init__(data_root=data_root, **kwargs)
