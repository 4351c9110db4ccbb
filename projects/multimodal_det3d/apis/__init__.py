"""Inference on your own scans: :class:`TokenFusion3DInferencer` (registered
in mmdet3d's ``INFERENCERS``) and the drawing it uses."""
from .drawing import compose_views, draw_boxes_3d, select_boxes
from .tokenfusion3d_inferencer import TokenFusion3DInferencer

__all__ = [
    'TokenFusion3DInferencer', 'compose_views', 'draw_boxes_3d', 'select_boxes'
]
