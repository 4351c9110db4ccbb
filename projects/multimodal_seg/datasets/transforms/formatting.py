"""Packing of multimodal segmentation samples."""
import numpy as np
from mmseg.datasets.transforms import PackSegInputs
from mmseg.registry import TRANSFORMS

from .loading import sample_name

MULTIMODAL_META_KEYS = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
                        'pad_shape', 'scale_factor', 'flip', 'flip_direction',
                        'reduce_zero_label', 'modalities', 'modality_channels',
                        'modality_paths')


@TRANSFORMS.register_module()
class PackMultiModalSegInputs(PackSegInputs):
    """Stack the modalities of a sample along channels and pack it.

    ``inputs`` becomes a float32 (sum(C_m), H, W) tensor holding the
    modalities of ``results['modalities']`` in that order (``'rgb'`` is
    ``results['img']``, in mmcv's BGR order; others ``results[m]``). The
    metainfo gets ``modalities`` and ``modality_channels`` so that the data
    preprocessor can check and normalise each modality and models can split
    them. The label is packed by mmseg's ``PackSegInputs``.
    """

    def __init__(self, meta_keys=MULTIMODAL_META_KEYS) -> None:
        super().__init__(meta_keys=meta_keys)

    def transform(self, results: dict) -> dict:
        name = sample_name(results)
        modalities = results.get('modalities')
        if not modalities:
            raise KeyError(f'Sample {name} has no `modalities`; use a '
                           'MultiModalSegDataset')
        arrays = []
        for modality in modalities:
            key = 'img' if modality == 'rgb' else modality
            if key not in results:
                loader = ('LoadImageFromFile' if modality == 'rgb' else
                          'LoadDepthFromFile / LoadModalityImageFromFile')
                raise KeyError(
                    f'Sample {name}: modality {modality!r} listed by the '
                    f'dataset was not loaded; add {loader} to the pipeline')
            array = results[key]
            arrays.append(array[..., None] if array.ndim == 2 else array)
        # (The label may legitimately differ: test pipelines load it after
        # Resize, at the original size, for the metric.)
        shapes = {m: a.shape[:2] for m, a in zip(modalities, arrays)}
        if len(set(shapes.values())) != 1:
            raise ValueError(f'Sample {name}: modality sizes differ after '
                             f'the pipeline: {shapes}')
        results = dict(results)
        results['modality_channels'] = tuple(a.shape[2] for a in arrays)
        results['img'] = np.concatenate(
            [a.astype(np.float32, copy=False) for a in arrays], axis=2)
        return super().transform(results)
