"""Geometric transforms that need to know about extra modalities, and the
RGB colour jitter of the DeLiVER recipe."""
import mmcv
import numpy as np
from mmcv.transforms import Pad
from mmseg.datasets.transforms import PhotoMetricDistortion
from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class MultiModalPad(Pad):
    """mmcv's ``Pad`` that also pads every extra modality.

    mmcv pads ``img`` and ``gt_seg_map`` only. Extra modalities (the names
    in ``results['modalities']`` other than ``'rgb'``) are padded to the same
    shape with ``pad_val['modalities']`` (default 0, "no measurement" for
    depth).

    Args:
        pad_val (dict | int): As mmcv's ``Pad``, plus the optional key
            ``'modalities'``.
        **kwargs: Passed to mmcv's ``Pad``.
    """

    def __init__(self, pad_val=dict(img=0, seg=255, modalities=0), **kwargs):
        super().__init__(pad_val=pad_val, **kwargs)

    def transform(self, results: dict) -> dict:
        results = super().transform(results)
        value = self.pad_val.get('modalities', 0)
        for modality in results.get('modalities', ()):
            if modality != 'rgb' and modality in results:
                results[modality] = mmcv.impad(
                    results[modality],
                    shape=results['pad_shape'][:2],
                    pad_val=value,
                    padding_mode=self.padding_mode)
        return results


@TRANSFORMS.register_module()
class PhotoMetricDistortionNoHue(PhotoMetricDistortion):
    """mmseg's ``PhotoMetricDistortion`` (brightness, contrast, saturation)
    without its hue step, for recipes that jitter no hue (DeLiVER's).

    ``hue_delta=0`` does not do this in mmseg 1.2: the hue step draws
    ``randint(-hue_delta, hue_delta)``, which raises "high <= 0" whenever the
    step runs (half the calls). Touches ``img`` only.
    """

    def __init__(self, **kwargs) -> None:
        if kwargs.pop('hue_delta', 0):
            raise ValueError('PhotoMetricDistortionNoHue changes no hue; '
                             "use mmseg's PhotoMetricDistortion for hue_delta")
        super().__init__(hue_delta=0, **kwargs)

    def hue(self, img: np.ndarray) -> np.ndarray:
        return img
