"""A deterministic synthetic classification set on which token merging
has something to lose: one small shape on a cluttered background.

Every image (32 x 32 by default) shows one shape, its class: a disc, a
ring, a square, a frame (a square outline), a triangle or a cross, of
random size, position, rotation and dark colour, on a light background
(a gradient between two random nearby colours) with small specks of random
colours and camera noise.

* Disc / ring and square / frame differ only inside the shape: a model
  that merges the inner patches with the outline loses the class.
* The specks make the background patches differ from each other, so
  merging the background is not free either: which tokens are merged
  matters, which is what MCTF's criteria are about.

The set is written on first use into ``data_root`` in the layout of
ImageNet-style folders (``train/<class>/<name>.png``,
``test/<class>/<name>.png``), read by mmpretrain's ``CustomDataset``: the
loading path is the one of a user's own folder of images.
"""
import os
import os.path as osp
from typing import Tuple

import cv2
import numpy as np
from mmpretrain.datasets import CustomDataset
from mmpretrain.registry import DATASETS

from projects.common.generated_data import begin_generation, finish_generation

# alphabetical: CustomDataset numbers the class folders in sorted order
SHAPE_CLASSES = ('cross', 'disc', 'frame', 'ring', 'square', 'triangle')
GENERATOR_VERSION = 2
SUPERSAMPLE = 4  # shapes are drawn 4x larger, then area-averaged


def _polygon(centre: np.ndarray, radius: float, corners: int,
             angle: float) -> np.ndarray:
    """(corners, 2) int32 vertices of a regular polygon."""
    turns = angle + np.arange(corners) * 2 * np.pi / corners
    return np.round(centre + radius *
                    np.stack([np.cos(turns), np.sin(turns)], axis=1)).astype(
                        np.int32)


def shape_mask(rng: np.random.Generator, cls: int, size: int) -> np.ndarray:
    """(size, size) float32 coverage in [0, 1] of one shape of class index
    ``cls`` (into :data:`SHAPE_CLASSES`): random diameter (44-64 % of the
    image), position, rotation."""
    big = size * SUPERSAMPLE
    canvas = np.zeros((big, big), np.uint8)
    radius = rng.uniform(0.22, 0.32) * big
    centre = rng.uniform(radius + SUPERSAMPLE, big - radius - SUPERSAMPLE, 2)
    angle = rng.uniform(0, 2 * np.pi)
    stroke = max(1, int(round(0.4 * radius)))
    name = SHAPE_CLASSES[cls]
    if name in ('disc', 'ring'):
        cv2.circle(canvas, tuple(int(v) for v in np.round(centre)),
                   int(round(radius)), 255, -1 if name == 'disc' else stroke)
    elif name in ('square', 'frame'):
        corners = _polygon(centre, radius, 4, angle)
        if name == 'square':
            cv2.fillPoly(canvas, [corners], 255)
        else:
            cv2.polylines(canvas, [corners], True, 255, stroke)
    elif name == 'triangle':
        cv2.fillPoly(canvas, [_polygon(centre, radius * 1.15, 3, angle)], 255)
    else:  # a cross: two perpendicular bars through the centre
        for turn in (angle, angle + np.pi / 2):
            ends = centre + radius * np.array([np.cos(turn), np.sin(turn)])
            starts = 2 * centre - ends
            cv2.line(canvas, tuple(int(v) for v in np.round(starts)),
                     tuple(int(v) for v in np.round(ends)), 255, stroke)
    small = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255


def render_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) float32 RGB: a light gradient between two nearby
    colours along a random direction, with 3-6 specks (2-3 pixel squares
    of random colours, dark ones among them)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)) + 0.5
    ramp = np.clip(ramp, 0, 1)[..., None]
    start = rng.uniform(150, 230, 3)
    end = start + rng.uniform(-30, 30, 3)
    image = (start + (end - start) * ramp).astype(np.float32)
    for _ in range(rng.integers(3, 7)):
        side = int(rng.integers(2, 4))
        y, x = rng.integers(0, size - side, 2)
        image[y:y + side, x:x + side] = rng.uniform(0, 255, 3)
    return image


def render_sample(rng: np.random.Generator,
                  size: int = 32) -> Tuple[np.ndarray, int]:
    """One image (size, size, 3) uint8 RGB and its class index."""
    cls = int(rng.integers(len(SHAPE_CLASSES)))
    image = render_background(rng, size)
    mask = shape_mask(rng, cls, size)[..., None]
    colour = rng.uniform(0, 110, 3)  # a dark colour on the light background
    image = image * (1 - mask) + colour * mask
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), cls


def generate_synthetic_shapes(root: str,
                              num_train: int = 3000,
                              num_test: int = 600,
                              image_size: int = 32,
                              seed: int = 0) -> str:
    """Write the set to ``root`` (``train/<class>/<index>.png``,
    ``test/<class>/<index>.png``) unless it is already there with the same
    parameters; safe when several processes call it at once (see
    :mod:`projects.common.generated_data`)."""
    params = dict(
        version=GENERATOR_VERSION,
        num_train=num_train,
        num_test=num_test,
        image_size=image_size,
        seed=seed)
    tmp = begin_generation(root, params)
    if tmp is None:
        return root
    rng = np.random.default_rng(seed)
    for split in ('train', 'test'):
        for name in SHAPE_CLASSES:
            os.makedirs(osp.join(tmp, split, name))
    for index in range(num_train + num_test):
        split = 'train' if index < num_train else 'test'
        image, cls = render_sample(rng, image_size)
        cv2.imwrite(
            osp.join(tmp, split, SHAPE_CLASSES[cls], f'{index:05d}.png'),
            image[..., ::-1])
    return finish_generation(tmp, root, params)


@DATASETS.register_module()
class SyntheticShapesDataset(CustomDataset):
    """The synthetic shapes set of this module, generated into
    ``data_root`` on first use and read as a folder of class folders.

    Args:
        data_root (str): Where the set is (or is to be) written.
        split (str): ``'train'`` or ``'test'``.
        num_train (int): Training images. Defaults to 3000.
        num_test (int): Test images. Defaults to 600.
        image_size (int): Side in pixels. Defaults to 32.
        seed (int): Generator seed. Defaults to 0.
        **kwargs: Passed to mmpretrain's ``CustomDataset`` (``pipeline``,
            ``test_mode``...).
    """
    METAINFO = dict(classes=SHAPE_CLASSES)

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 num_train: int = 3000,
                 num_test: int = 600,
                 image_size: int = 32,
                 seed: int = 0,
                 **kwargs) -> None:
        if split not in ('train', 'test'):
            raise ValueError(f"split must be 'train' or 'test', got "
                             f'{split!r}')
        generate_synthetic_shapes(data_root, num_train, num_test, image_size,
                                  seed)
        super().__init__(data_root=data_root, data_prefix=split, **kwargs)
