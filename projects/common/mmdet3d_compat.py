"""Two fixes of mmdet3d 1.4 on the stack this plugin pins.

* numpy >= 2.4: ``indoor_eval`` (IndoorMetric: SUN RGB-D / ScanNet mAP)
  converts each class's AP, a shape-(1,) array, with ``float()``; numpy 2.4
  no longer converts arrays of ndim > 0, so every indoor evaluation fails at
  its summary table. The APs are returned as size-1 arrays that ``float()``
  accepts again; values are unchanged.
* The ``INFERENCERS`` registry names its location ``mmdet3d.api.inferencers``
  (sic), so every lookup by name (``INFERENCERS.build`` / ``get``) fails
  importing it; the package is ``mmdet3d.apis.inferencers``.
"""
import importlib

import numpy as np
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
