"""Predicted 3D boxes drawn on the scan's original image(s): which boxes
(score threshold, optional class-agnostic NMS), their projection with the
scan's calibration, and a grid of posed views."""
from typing import List, Optional, Sequence

import cv2
import numpy as np
import torch
from mmdet3d.models.layers import aligned_3d_nms
from mmdet3d.structures import BaseInstance3DBoxes
from mmengine.structures import InstanceData

from ..models.fusion_layers.projection import (project_points,
                                               undo_points_augmentation)
from ..visualization import draw_projected_boxes

# posed views per row of a multi-view drawing (ScanNet configs load 5 or 10)
VIEWS_PER_ROW = 5


def select_boxes(instances: InstanceData,
                 score_thr: float,
                 agnostic_nms_iou: Optional[float] = None) -> InstanceData:
    """The predictions scoring at least ``score_thr``, and with
    ``agnostic_nms_iou`` only the best of those overlapping by more than
    that 3D IoU (axis-aligned extents of the corners), whatever their class:
    GroupFree3D's per-class NMS leaves one box per class on an object,
    which clutters a drawing."""
    instances = instances.to('cpu')
    instances = instances[instances.scores_3d >= score_thr]
    if agnostic_nms_iou is None or len(instances) == 0:
        return instances
    corners = instances.bboxes_3d.corners
    extents = torch.cat([corners.min(1)[0], corners.max(1)[0]], dim=1)
    scores = instances.scores_3d
    keep = aligned_3d_nms(extents, scores, scores.new_zeros(len(scores)),
                          agnostic_nms_iou)
    return instances[keep]


def draw_boxes_3d(image: np.ndarray,
                  boxes_3d: BaseInstance3DBoxes,
                  labels: np.ndarray,
                  class_names: Sequence[str],
                  proj_mat,
                  pixel_origin: float,
                  scores: Optional[np.ndarray] = None,
                  img_meta: Optional[dict] = None,
                  coord_type: str = 'DEPTH',
                  min_depth: float = 1e-3) -> np.ndarray:
    """Draw 3D boxes on the ORIGINAL image of their scan.

    Args:
        image (np.ndarray): (H, W, 3) uint8 BGR, as read from the file.
        boxes_3d (BaseInstance3DBoxes): Boxes in the frame of the points the
            model saw.
        labels (np.ndarray): (K,) class indices.
        class_names (Sequence[str]): Class names.
        proj_mat: The calibration that maps the points (as loaded, before
            any augmentation) to pixels of ``image``: ``depth2img``, or one
            view's ``lidar2img`` before resizing.
        pixel_origin (float): The pixel coordinate the calibration gives the
            first pixel (1 for SUN RGB-D's MATLAB ``depth2img``).
        scores (np.ndarray, optional): (K,) scores for the tags.
        img_meta (dict, optional): The sample's metainfo: the 3D
            augmentation it records (none in the shipped test pipelines) is
            undone before projecting.
        coord_type (str): Frame of the points. Defaults to 'DEPTH'.
        min_depth (float): Corners nearer the camera plane are not drawn.

    Returns:
        np.ndarray: A copy of ``image`` with the boxes drawn.
    """
    corners = boxes_3d.corners.reshape(-1, 3).float()
    if img_meta is not None:
        corners = undo_points_augmentation(corners, img_meta, coord_type)
    uv, depth = project_points(corners, proj_mat)
    uv = (uv - pixel_origin).reshape(-1, 8, 2).numpy()
    valid = (depth > min_depth).reshape(-1, 8).numpy()
    return draw_projected_boxes(image, uv, valid, labels, class_names, scores)


def compose_views(views: List[np.ndarray],
                  per_row: int = VIEWS_PER_ROW) -> np.ndarray:
    """The drawn views in a grid of ``per_row`` columns, each resized to
    the first view's size, empty cells white."""
    height, width = views[0].shape[:2]
    cells = [
        view if view.shape[:2] == (height, width) else cv2.resize(
            view, (width, height), interpolation=cv2.INTER_AREA)
        for view in views
    ]
    columns = min(per_row, len(cells))
    blank = np.full_like(cells[0], 255)
    cells += [blank] * (-len(cells) % columns)
    rows = [
        np.hstack(cells[start:start + columns])
        for start in range(0, len(cells), columns)
    ]
    return np.vstack(rows)
