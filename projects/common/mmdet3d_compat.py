"""Three fixes of mmdet3d 1.4 on the stack this plugin pins.

* numpy >= 2.4: ``indoor_eval`` (IndoorMetric: SUN RGB-D / ScanNet mAP)
  converts each class's AP, a shape-(1,) array, with ``float()``; numpy 2.4
  no longer converts arrays of ndim > 0, so every indoor evaluation fails at
  its summary table. The APs are returned as size-1 arrays that ``float()``
  accepts again; values are unchanged.
* The ``INFERENCERS`` registry names its location ``mmdet3d.api.inferencers``
  (sic), so every lookup by name (``INFERENCERS.build`` / ``get``) fails
  importing it; the package is ``mmdet3d.apis.inferencers``.
* The KITTI evaluation (``kitti_eval``, KittiMetric) computes its rotated
  BEV overlaps with a numba CUDA kernel (``rotate_iou_gpu_eval``), whose
  module cannot even be imported without a CUDA driver. Without one, a
  stand-in module gives the overlaps from mmcv's CPU ``box_iou_rotated``
  (:func:`rotate_iou_cpu_eval`); with one, the kernel runs as before.
"""
import importlib
import sys
import types

import numba.cuda
import numpy as np
import torch
from mmcv.ops import box_iou_rotated
from mmdet3d.registry import INFERENCERS

# The package re-exports the function under the module's name.
_indoor_eval = importlib.import_module(
    'mmdet3d.evaluation.functional.indoor_eval')


class SizeOneArray(np.ndarray):
    """A size-1 array that converts to a Python float."""

    def __float__(self) -> float:
        return float(np.asarray(self).reshape(-1)[0])


_eval_map_recall = _indoor_eval.eval_map_recall


def eval_map_recall(pred, gt, ovthresh=None):
    recall, precision, ap = _eval_map_recall(pred, gt, ovthresh)
    for per_iou in ap:
        for label, value in per_iou.items():
            if isinstance(value, np.ndarray) and value.size == 1:
                per_iou[label] = value.view(SizeOneArray)
    return recall, precision, ap


if getattr(_indoor_eval.eval_map_recall, '__module__', '') != __name__:
    _indoor_eval.eval_map_recall = eval_map_recall

INFERENCERS._locations = [
    'mmdet3d.apis.inferencers' if loc == 'mmdet3d.api.inferencers' else loc
    for loc in INFERENCERS._locations
]

_ROTATE_IOU = 'mmdet3d.evaluation.functional.kitti_utils.rotate_iou'


def rotate_iou_cpu_eval(boxes: np.ndarray,
                        query_boxes: np.ndarray,
                        criterion: int = -1,
                        device_id: int = 0) -> np.ndarray:
    """``rotate_iou_gpu_eval`` on the CPU: overlaps (N, K) float32 of
    rotated BEV boxes (N, 5) and (K, 5) ``[x, y, w, h, angle]``.

    ``criterion``: -1 intersection / union, 0 intersection / area of the
    first box, 1 intersection / area of the query box, anything else the
    intersection area (what ``d3_box_overlap`` asks for). Areas do not
    depend on the sense of rotation, so the kernel's clockwise angles and
    mmcv's agree. ``device_id`` is accepted for the kernel's signature.
    """
    boxes = torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32))
    query = torch.from_numpy(
        np.ascontiguousarray(query_boxes, dtype=np.float32))
    if boxes.shape[0] == 0 or query.shape[0] == 0:
        return np.zeros((boxes.shape[0], query.shape[0]), dtype=np.float32)
    if criterion == -1:
        overlaps = box_iou_rotated(boxes, query, 'iou')
    elif criterion == 0:
        overlaps = box_iou_rotated(boxes, query, 'iof')
    elif criterion == 1:
        overlaps = box_iou_rotated(query, boxes, 'iof').T
    else:
        area = boxes[:, 2] * boxes[:, 3]
        overlaps = box_iou_rotated(boxes, query, 'iof') * area[:, None]
    return overlaps.contiguous().numpy()


if not numba.cuda.is_available() and _ROTATE_IOU not in sys.modules:
    # The kernel module compiles a numba CUDA kernel when imported, which
    # needs a CUDA driver; bev_box_overlap / d3_box_overlap import
    # rotate_iou_gpu_eval from it at call time, so a stand-in module
    # answers them instead.
    _cpu_rotate_iou = types.ModuleType(
        _ROTATE_IOU, 'CPU stand-in for mmdet3d\'s numba CUDA rotated IoU '
        '(projects.common.mmdet3d_compat).')
    _cpu_rotate_iou.rotate_iou_gpu_eval = rotate_iou_cpu_eval
    sys.modules[_ROTATE_IOU] = _cpu_rotate_iou
