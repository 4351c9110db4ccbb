"""Geometric augmentation of translation samples.

Each transform applies ONE geometry (size, crop window, flip) to every
domain of a sample, the sources (``results['source_imgs']``) and the target
(``results['target_img']``), all float32 (3, H, W) arrays from
:class:`LoadTranslationDomains`, so that the domains stay pixel-aligned.

The reference trains with a resize to 286 x 286 (bilinear), a random
256 x 256 crop and a horizontal flip with probability 0.5::

    dict(type='LoadTranslationDomains'),
    dict(type='TranslationResize', scale=286),
    dict(type='TranslationRandomCrop', crop_size=256),
    dict(type='TranslationRandomFlip', prob=0.5),
    dict(type='PackTranslationInputs'),

and tests with the 512 x 512 frames resized to 256 x 256, without crop or
flip::

    dict(type='LoadTranslationDomains'),
    dict(type='TranslationResize', scale=256),
    dict(type='PackTranslationInputs'),

Resizing uses Pillow's bilinear filter (with its antialiasing when
shrinking), the filter the reference's Pillow resize applies, on the float
values of each channel. The reference draws crop offsets from
``0..286 - 256 + 1``, one more than fits, so that its largest offset pads
one zero column or row; here offsets stay inside the image
(``0..286 - 256``).
"""
from typing import Callable, Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmseg.registry import TRANSFORMS
from PIL import Image


def _size_pair(size: Union[int, Sequence[int]], name: str) -> Tuple[int, int]:
    """``size`` as (H, W): an int is a square."""
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(s, int) and s > 0 for s in pair):
        raise ValueError(f'{name} must be a positive int or an (H, W) pair '
                         f'of positive ints, got {size!r}')
    return pair


def resize_chw(array: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Resize a float32 (C, H, W) array to ``size`` (H, W), channel by
    channel, with Pillow's bilinear filter."""
    height, width = size
    if array.shape[1:] == (height, width):
        return array.copy()
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(channel, np.float32)).resize(
                (width, height), Image.BILINEAR)) for channel in array
    ]
    return np.stack(channels).astype(np.float32, copy=False)


def check_loaded(results: dict, transform: str) -> Tuple[int, int]:
    """The (H, W) of the loaded domains; a clear error if the sample was
    not loaded by :class:`LoadTranslationDomains`."""
    if 'source_imgs' not in results or 'target_img' not in results:
        raise KeyError(f'{transform} needs the loaded domains '
                       '(source_imgs, target_img): put '
                       'LoadTranslationDomains before it in the pipeline')
    return tuple(results['target_img'].shape[1:])


def map_domains(results: dict, fn: Callable[[np.ndarray], np.ndarray],
                transform: str) -> None:
    """Apply ``fn`` to every domain of a sample (sources and target) and
    update ``img_shape``."""
    check_loaded(results, transform)
    results['source_imgs'] = [fn(a) for a in results['source_imgs']]
    results['target_img'] = fn(results['target_img'])
    results['img_shape'] = tuple(results['target_img'].shape[1:])


@TRANSFORMS.register_module()
class TranslationResize(BaseTransform):
    """Resize every domain of a sample to a fixed size.

    Required keys: ``source_imgs``, ``target_img``.
    Modified keys: ``source_imgs``, ``target_img``, ``img_shape``.
    Added keys: ``scale_factor`` ((w_scale, h_scale)).

    Args:
        scale (int | Sequence[int]): Output size; an int is a square
            (the reference resizes its square frames to 286 x 286 for
            training and 256 x 256 for testing), a pair is (H, W).
    """

    def __init__(self, scale: Union[int, Sequence[int]] = 286) -> None:
        self.scale = _size_pair(scale, 'scale')

    def transform(self, results: dict) -> dict:
        height, width = check_loaded(results, type(self).__name__)
        map_domains(results, lambda a: resize_chw(a, self.scale),
                    type(self).__name__)
        results['scale_factor'] = (self.scale[1] / width,
                                   self.scale[0] / height)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(scale={self.scale})'


@TRANSFORMS.register_module()
class TranslationRandomCrop(BaseTransform):
    """Crop the same random window out of every domain of a sample.

    Required keys: ``source_imgs``, ``target_img``.
    Modified keys: ``source_imgs``, ``target_img``, ``img_shape``.
    Added keys: ``crop_offset`` ((top, left) of the window).

    Args:
        crop_size (int | Sequence[int]): Window size; an int is a square,
            a pair is (H, W). Defaults to 256.
    """

    def __init__(self, crop_size: Union[int, Sequence[int]] = 256) -> None:
        self.crop_size = _size_pair(crop_size, 'crop_size')

    @cache_randomness
    def _offset(self, height: int, width: int) -> Tuple[int, int]:
        return (int(np.random.randint(0, height - self.crop_size[0] + 1)),
                int(np.random.randint(0, width - self.crop_size[1] + 1)))

    def transform(self, results: dict) -> dict:
        height, width = check_loaded(results, type(self).__name__)
        crop_h, crop_w = self.crop_size
        if height < crop_h or width < crop_w:
            raise ValueError(
                f'Sample {results.get("frame")} is {width}x{height} '
                f'(WxH), smaller than the {crop_w}x{crop_h} crop; resize it '
                'first (TranslationResize)')
        top, left = self._offset(height, width)
        map_domains(
            results,
            lambda a: a[:, top:top + crop_h, left:left + crop_w].copy(),
            type(self).__name__)
        results['crop_offset'] = (top, left)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(crop_size={self.crop_size})'


@TRANSFORMS.register_module()
class TranslationRandomFlip(BaseTransform):
    """Flip every domain of a sample horizontally, or none, at random.

    Only a horizontal flip is offered: the domains are images of upright
    indoor scenes. Surface normals and curvatures keep their stored
    values, as in the reference (which flips the encoded images as
    pictures, without negating the x component of the normals).

    Required keys: ``source_imgs``, ``target_img``.
    Modified keys: ``source_imgs``, ``target_img``.
    Added keys: ``flip`` (bool), ``flip_direction`` (``'horizontal'`` or
    None).

    Args:
        prob (float): Probability of flipping. Defaults to 0.5.
    """

    def __init__(self, prob: float = 0.5) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        self.prob = prob

    @cache_randomness
    def _flip(self) -> bool:
        return bool(np.random.rand() < self.prob)

    def transform(self, results: dict) -> dict:
        check_loaded(results, type(self).__name__)
        flip = self._flip()
        if flip:
            map_domains(results, lambda a: a[:, :, ::-1].copy(),
                        type(self).__name__)
        results['flip'] = flip
        results['flip_direction'] = 'horizontal' if flip else None
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(prob={self.prob})'
