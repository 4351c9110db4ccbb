"""Geometric transforms that need to know about extra modalities."""
import mmcv
from mmcv.transforms import Pad
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
