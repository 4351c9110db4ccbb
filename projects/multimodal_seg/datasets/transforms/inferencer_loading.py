"""Loading of one inference sample given as a dict of modality -> file or
array: the inferencer's counterpart of a dataset sample plus the test
pipeline's loaders."""
from typing import List, Sequence

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio
from mmseg.registry import TRANSFORMS

from .loading import BaseLoadModality


@TRANSFORMS.register_module()
class LoadMultiModalInferencerInputs(BaseTransform):
    """Load a sample ``dict(name=..., inputs={modality: path | ndarray})``
    into the results a dataset sample gives the test pipeline.

    RGB is read as ``LoadImageFromFile`` reads it (a path; mmcv's BGR
    order) or taken as given (an (H, W, 3) uint8 array in the same BGR
    order, as ``LoadImageFromNDArray`` does). Every other modality goes
    through the config's own loader for it (``loaders``: the
    ``LoadDepthFromFile`` / ``LoadModalityImageFromFile`` steps of the test
    pipeline), from its path or, for an array, from memory, so depth units,
    dtype checks and resizing rules are those of evaluation.

    A model without RGB (e.g. a depth-only baseline) takes the size of the
    sample from its first modality, which stands in as ``img`` for the
    geometric transforms until packing replaces it.

    Args:
        modalities (Sequence[str]): The model's modalities, in order.
        loaders (Sequence[dict]): Configs of the test pipeline's modality
            loaders; every non-RGB modality needs one.
    """

    def __init__(self, modalities: Sequence[str],
                 loaders: Sequence[dict]) -> None:
        self.modalities = tuple(modalities)
        self.loaders: List[BaseLoadModality] = []
        for cfg in loaders:
            loader = TRANSFORMS.build(cfg)
            if not isinstance(loader, BaseLoadModality):
                raise TypeError(f'{type(loader).__name__} is not a modality '
                                'loader (LoadDepthFromFile, '
                                'LoadModalityImageFromFile)')
            self.loaders.append(loader)
        loaded = {loader.modality for loader in self.loaders}
        unloaded = [
            m for m in self.modalities if m != 'rgb' and m not in loaded
        ]
        if unloaded:
            raise ValueError(f'The test pipeline has no loader for '
                             f'{unloaded}; it loads {sorted(loaded)}')

    @staticmethod
    def read_rgb(value, name: str) -> np.ndarray:
        if isinstance(value, str):
            try:
                image = mmcv.imfrombytes(fileio.get(value), flag='color')
            except FileNotFoundError:
                raise FileNotFoundError(
                    f'Sample {name}: rgb file {value} does not exist')
            if image is None:
                raise OSError(f'Sample {name}: cannot decode rgb image '
                              f'{value} (unreadable or truncated file)')
            return image
        if not isinstance(value, np.ndarray) or value.dtype != np.uint8 or \
                value.ndim != 3 or value.shape[2] != 3:
            raise ValueError(
                f'Sample {name}: the rgb array must be (H, W, 3) uint8 in '
                f'BGR order, got {getattr(value, "shape", type(value))} '
                f'{getattr(value, "dtype", "")}')
        return value

    def transform(self, results: dict) -> dict:
        name, inputs = results['name'], results['inputs']
        out = dict(
            sample_idx=name,
            img_path=inputs['rgb']
            if isinstance(inputs.get('rgb'), str) else None,
            modalities=self.modalities,
            modality_paths={
                m: v
                for m, v in inputs.items()
                if m != 'rgb' and isinstance(v, str)
            },
            modality_arrays={
                m: v
                for m, v in inputs.items()
                if m != 'rgb' and not isinstance(v, str)
            },
            seg_fields=[])
        if 'rgb' in self.modalities:
            image = self.read_rgb(inputs['rgb'], name)
            out.update(img=image, img_shape=image.shape[:2])
            out['ori_shape'] = image.shape[:2]
        for loader in self.loaders:
            out = loader(out)
            if 'img' not in out and loader.modality in out:
                # no RGB: this first loaded modality gives the sample size
                first = out[loader.modality]
                out.update(
                    img=first,
                    img_shape=first.shape[:2],
                    ori_shape=first.shape[:2],
                    reference_modality=loader.modality)
        out.pop('modality_arrays')
        return out

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(modalities={self.modalities}, '
                f'loaders={self.loaders})')
