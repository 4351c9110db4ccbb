"""A deterministic synthetic translation set whose target needs two inputs.

Every frame is a bumpy surface (a sum of Gaussian bumps on a plane) lit by
a distant light from a random direction, and painted with a "material"
map: a few regions (Voronoi cells), each of one material value ``t`` in
[0, 1]. The domains, written in Taskonomy's formats and file naming, are:

=================  ==========================================================
domain             content
=================  ==========================================================
reshading          Lambertian shading ``s`` in [0.15, 1] (8-bit grey)
edge_texture       the material map ``t`` (16-bit, ``t * 11355``, so that
                   ``t = 1`` is the loader's fixed maximum)
rgb                albedo(t) * s, with albedo(t) a linear ramp between two
                   colours (8-bit RGB) -- the translation target
normal             the surface normal, 127-centred (8-bit RGB)
depth_euclidean    distance to the surface in 1/512 m (16-bit)
=================  ==========================================================

``rgb`` is bilinear in (s, t): shading alone cannot tell the colour and
the material map alone cannot tell the brightness, so the default task
reshading + edge_texture -> rgb (TokenFusion's default "Shade + Texture ->
RGB") needs both inputs. ``normal`` and ``depth_euclidean`` let 3- and
4-source configurations run on the same set.

Files follow the ``building`` layout of :mod:`.taskonomy`
(``synthetic/<domain>/point_<i>_view_0_domain_<domain>.png``) and the split
lists ``train.txt`` and ``test.txt`` hold ``{domain}`` lines, so the
Taskonomy loading transforms read this set unchanged.
"""
import os
import os.path as osp
from typing import Dict, Sequence, Tuple

import cv2
import numpy as np
from mmseg.registry import DATASETS

from projects.common.generated_data import begin_generation, finish_generation
from .taskonomy import TaskonomyDataset, frame_template
from .transforms.loading import DOMAIN_FORMATS

GENERATOR_VERSION = 1
BUILDING = 'synthetic'
SYNTHETIC_DOMAINS = ('rgb', 'reshading', 'edge_texture', 'normal',
                     'depth_euclidean')
# albedo(t) = low + (high - low) * t, per RGB channel
ALBEDO_LOW = np.array([0.95, 0.30, 0.10], np.float64)
ALBEDO_HIGH = np.array([0.10, 0.60, 0.95], np.float64)
AMBIENT = 0.15


def render_surface(rng: np.random.Generator,
                   size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """A random bumpy surface.

    Returns:
        tuple: ``height`` (H, W) float64 in image-width units and ``normal``
        (H, W, 3) float64 unit normals (x right, y down, z to the camera).
    """
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    yy, xx = yy / w, xx / w
    height = rng.uniform(-0.1, 0.1) * xx + rng.uniform(-0.1, 0.1) * yy
    for _ in range(rng.integers(3, 7)):
        cy, cx = rng.uniform(0, h / w), rng.uniform(0, 1)
        sigma = rng.uniform(0.06, 0.2)
        amplitude = rng.choice([-1, 1]) * rng.uniform(0.03, 0.12)
        height += amplitude * np.exp(-((yy - cy)**2 + (xx - cx)**2) /
                                     (2 * sigma**2))
    dy, dx = np.gradient(height, 1.0 / w)
    normal = np.stack([-dx, -dy, np.ones_like(height)], axis=-1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    return height, normal


def render_materials(rng: np.random.Generator, size: Tuple[int,
                                                           int]) -> np.ndarray:
    """(H, W) material map in [0, 1]: 4-8 Voronoi cells, each of one
    uniformly drawn value, independent of the surface."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    num = int(rng.integers(4, 9))
    seeds = rng.uniform(0, 1, (num, 2)) * (h, w)
    values = rng.uniform(0, 1, num)
    distance = (yy[..., None] - seeds[:, 0])**2 + (xx[..., None] -
                                                   seeds[:, 1])**2
    return values[np.argmin(distance, axis=-1)]


def render_translation_sample(rng: np.random.Generator,
                              size: Tuple[int, int]) -> Dict[str, np.ndarray]:
    """Render one frame.

    Returns:
        dict: domain -> stored array: ``rgb`` (H, W, 3) uint8 and ``normal``
        (H, W, 3) uint8 in RGB order, ``reshading`` (H, W) uint8,
        ``edge_texture`` and ``depth_euclidean`` (H, W) uint16.
    """
    height, normal = render_surface(rng, size)
    elevation = rng.uniform(np.radians(30), np.radians(70))
    azimuth = rng.uniform(0, 2 * np.pi)
    light = np.array([
        np.cos(elevation) * np.cos(azimuth),
        np.cos(elevation) * np.sin(azimuth),
        np.sin(elevation)
    ])
    shading = AMBIENT + (1 - AMBIENT) * np.clip(normal @ light, 0, 1)
    material = render_materials(rng, size)
    albedo = ALBEDO_LOW + (ALBEDO_HIGH - ALBEDO_LOW) * material[..., None]
    rgb = albedo * shading[..., None]
    distance_m = 2.5 - 4.0 * height  # a surface 2.5 m away, bumps of ~0.5 m
    edge_max = DOMAIN_FORMATS['edge_texture'].maximum
    return dict(
        rgb=np.round(rgb * 255).astype(np.uint8),
        reshading=np.round(shading * 255).astype(np.uint8),
        edge_texture=np.round(material * edge_max).astype(np.uint16),
        normal=np.round((normal * 0.5 + 0.5) * 255).astype(np.uint8),
        depth_euclidean=np.round(np.clip(distance_m, 0.1, 127) * 512).astype(
            np.uint16))


def generate_synthetic_translation(root: str,
                                   num_train: int = 200,
                                   num_test: int = 40,
                                   image_size: Tuple[int, int] = (64, 64),
                                   seed: int = 0) -> str:
    """Write the synthetic set to ``root`` unless it is already there with
    the same parameters (race-safe, see
    :mod:`projects.common.generated_data`).

    Frames ``0 .. num_train - 1`` are listed in ``train.txt``, the next
    ``num_test`` in ``test.txt``, one ``{domain}`` line each.
    """
    params = dict(
        version=GENERATOR_VERSION,
        num_train=num_train,
        num_test=num_test,
        image_size=list(image_size),
        seed=seed)
    tmp = begin_generation(root, params)
    if tmp is None:
        return root
    rng = np.random.default_rng(seed)
    for domain in SYNTHETIC_DOMAINS:
        os.makedirs(osp.join(tmp, BUILDING, domain))
    lines = {'train': [], 'test': []}
    for index in range(num_train + num_test):
        template = frame_template('building', BUILDING, index, 0)
        for domain, array in render_translation_sample(
                rng, tuple(image_size)).items():
            if array.ndim == 3:
                array = array[..., ::-1]  # OpenCV writes BGR
            path = osp.join(tmp, template.replace('{domain}', domain))
            if not cv2.imwrite(path, array):
                raise OSError(f'Could not write {path}')
        lines['train' if index < num_train else 'test'].append(template)
    for split, split_lines in lines.items():
        with open(osp.join(tmp, f'{split}.txt'), 'w') as f:
            f.write('\n'.join(split_lines) + '\n')
    return finish_generation(tmp, root, params)


@DATASETS.register_module()
class SyntheticTranslationDataset(TaskonomyDataset):
    """The synthetic set of this module, generated into ``data_root`` on
    first use and read like a Taskonomy tree.

    Args:
        data_root (str): Where the set is (or will be) written. Defaults
            to ``'data/synthetic_translation'``.
        ann_file (str): ``'train.txt'`` or ``'test.txt'``. Defaults to
            ``'train.txt'``.
        sources (Sequence[str]): Input domains, any 1-4 of
            :data:`SYNTHETIC_DOMAINS` other than the target. Defaults to
            ``('reshading', 'edge_texture')``.
        target (str): Defaults to ``'rgb'``.
        num_train (int): Training frames. Defaults to 200.
        num_test (int): Test frames. Defaults to 40.
        image_size (tuple[int, int]): (H, W). Defaults to (64, 64).
        seed (int): Generator seed. Defaults to 0.
        **kwargs: Passed to :class:`TaskonomyDataset`.
    """

    def __init__(self,
                 data_root: str = 'data/synthetic_translation',
                 ann_file: str = 'train.txt',
                 sources: Sequence[str] = ('reshading', 'edge_texture'),
                 target: str = 'rgb',
                 num_train: int = 200,
                 num_test: int = 40,
                 image_size: Tuple[int, int] = (64, 64),
                 seed: int = 0,
                 **kwargs) -> None:
        sources = self._check_domains(sources, target)
        unknown = [
            d for d in sources + (target, ) if d not in SYNTHETIC_DOMAINS
        ]
        if unknown:
            raise ValueError(f'The synthetic set has no domain {unknown}; '
                             f'it has {SYNTHETIC_DOMAINS}')
        generate_synthetic_translation(data_root, num_train, num_test,
                                       tuple(image_size), seed)
        super().__init__(
            sources=sources,
            target=target,
            ann_file=ann_file,
            data_root=data_root,
            image_size=image_size,
            **kwargs)
