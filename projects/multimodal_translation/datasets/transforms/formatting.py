"""Packing of translation samples into model inputs and data samples."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from ..data_sample import TranslationDataSample
from .processing import check_loaded

TRANSLATION_META_KEYS = ('sample_idx', 'frame', 'sources', 'target',
                         'source_paths', 'target_path', 'ori_shape',
                         'img_shape', 'scale_factor', 'crop_offset', 'flip',
                         'flip_direction')


@TRANSFORMS.register_module()
class PackTranslationInputs(BaseTransform):
    """Stack the sources into ``inputs`` and put the target into a
    :class:`TranslationDataSample`.

    Required keys: ``source_imgs``, ``target_img``, ``sources``,
    ``target``.

    Added keys: ``inputs`` (float32 (M * 3, H, W) tensor, the M sources in
    the order of ``sources``) and ``data_samples`` (with ``gt_image``
    (3, H, W) and the ``meta_keys`` present in the sample as metainfo).
    The packed dict holds only these two keys.

    Args:
        meta_keys (Sequence[str]): Sample keys copied to the metainfo when
            present. Defaults to :data:`TRANSLATION_META_KEYS`.
    """

    def __init__(self,
                 meta_keys: Sequence[str] = TRANSLATION_META_KEYS) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        height, width = check_loaded(results, type(self).__name__)
        name = results.get('frame')
        sources = tuple(results['sources'])
        images = list(results['source_imgs'])
        if len(images) != len(sources):
            raise ValueError(f'Sample {name}: {len(images)} loaded sources '
                             f'for the {len(sources)} sources {sources}')
        for domain, image in zip(sources + (results['target'], ),
                                 images + [results['target_img']]):
            if image.shape != (3, height, width):
                raise ValueError(
                    f'Sample {name}: {domain} is {image.shape} after the '
                    f'pipeline, expected (3, {height}, {width}) like the '
                    'target')
        inputs = torch.from_numpy(
            np.ascontiguousarray(
                np.concatenate(images, axis=0), dtype=np.float32))
        data_sample = TranslationDataSample(metainfo={
            key: results[key]
            for key in self.meta_keys if key in results
        })
        data_sample.gt_image = torch.from_numpy(
            np.ascontiguousarray(results['target_img'], dtype=np.float32))
        return dict(inputs=inputs, data_samples=data_sample)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(meta_keys={self.meta_keys})'
