"""Panels RGB | extra modalities | prediction | ground truth."""
from typing import List, Optional

import cv2
import mmcv
import numpy as np
from mmseg.registry import VISUALIZERS
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer

from ..datasets.transforms.loading import read_depth


def colourize_depth(depth: np.ndarray) -> np.ndarray:
    """(H, W) depth -> (H, W, 3) RGB uint8, near = warm, invalid (0) =
    black; the colour range spans the valid values of this map."""
    valid = depth > 0
    out = np.zeros(depth.shape + (3, ), np.uint8)
    if valid.any():
        low, high = np.percentile(depth[valid], (1, 99))
        scaled = np.clip((depth - low) / max(high - low, 1e-6), 0, 1)
        coloured = cv2.applyColorMap((255 * (1 - scaled)).astype(np.uint8),
                                     cv2.COLORMAP_TURBO)
        out[valid] = coloured[valid][:, ::-1]
    return out


def modality_panel(modality: str, value) -> np.ndarray:
    """A displayable (H, W, 3) RGB uint8 picture of one modality given as a
    file or as an array as loaded (mmcv's BGR order for colour): depth
    colourised (:func:`colourize_depth`), RGB / image-like maps as they
    are, a single-channel map in grey."""
    if isinstance(value, str):
        if 'depth' in modality:
            return colourize_depth(read_depth(value))
        return mmcv.imread(value, channel_order='rgb')
    array = np.asarray(value)
    if 'depth' in modality:
        return colourize_depth(array.astype(np.float32))
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return np.ascontiguousarray(array[..., 2::-1]).astype(np.uint8)


@VISUALIZERS.register_module()
class MultiModalSegLocalVisualizer(SegLocalVisualizer):
    """``SegLocalVisualizer`` that draws one row per sample:
    RGB | each extra modality | prediction | ground truth.

    The extra modalities are read from ``data_sample.modality_paths``
    (depth through the depth reader and colourised, image-like modalities
    as they are stored). ``tools/test.py --show-dir DIR`` saves these rows.
    """

    def modality_panels(self, data_sample: SegDataSample,
                        shape: tuple) -> List[np.ndarray]:
        panels = []
        paths = data_sample.metainfo.get('modality_paths', {})
        for modality in data_sample.metainfo.get('modalities', ()):
            if modality == 'rgb' or modality not in paths:
                continue
            panel = modality_panel(modality, paths[modality])
            if panel.shape[:2] != shape[:2]:
                panel = mmcv.imresize(panel, (shape[1], shape[0]))
            panels.append(panel)
        return panels

    def add_datasample(self,
                       name: str,
                       image: np.ndarray,
                       data_sample: Optional[SegDataSample] = None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: Optional[str] = None,
                       step: int = 0,
                       with_labels: Optional[bool] = False) -> None:
        classes = self.dataset_meta.get('classes', None)
        palette = self.dataset_meta.get('palette', None)
        panels = [image]
        if data_sample is not None:
            panels += self.modality_panels(data_sample, image.shape)
            if draw_pred and 'pred_sem_seg' in data_sample:
                panels.append(
                    self._draw_sem_seg(image, data_sample.pred_sem_seg,
                                       classes, palette, with_labels))
            if draw_gt and 'gt_sem_seg' in data_sample:
                panels.append(
                    self._draw_sem_seg(image, data_sample.gt_sem_seg, classes,
                                       palette, with_labels))
        drawn = np.concatenate(panels, axis=1)
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            mmcv.imwrite(mmcv.rgb2bgr(drawn), out_file)
        else:
            self.add_image(name, drawn, step)
