"""Drawing of projected 3D boxes on images (pure numpy / cv2).

The projection itself (``depth2img``, augmentation undo, validity) is the
caller's business; this module only draws what it is given.
"""
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

# The 12 edges of a box in the corner order of mmdet3d's
# ``BaseInstance3DBoxes.corners``: corner i is (x, y, z) = the binary digits
# of [0, 1, 3, 2, 4, 5, 7, 6][i] in the box frame, i.e. (x0y0z0, x0y0z1,
# x0y1z1, x0y1z0, x1y0z0, x1y0z1, x1y1z1, x1y1z0); an edge joins two corners
# that differ in one coordinate.
BOX_EDGES = ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4),
             (0, 4), (1, 5), (2, 6), (3, 7))

# Sub-pixel precision of cv2.line (coordinates are scaled by 2**_SHIFT).
_SHIFT = 4
# Segments are pre-clipped in float to the image grown by this margin, so
# that huge coordinates (corners just in front of the camera) fit in int32.
_PRECLIP_MARGIN = 16.0
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.35


def default_palette(num_classes: int) -> List[Tuple[int, int, int]]:
    """Distinct saturated BGR colours, hues spaced by the golden angle."""
    hues = (np.arange(num_classes) * 137.508) % 360 / 2  # OpenCV hue 0-180
    hsv = np.stack(
        [hues, np.full(num_classes, 220),
         np.full(num_classes, 255)], 1).astype(np.uint8)
    bgr = cv2.cvtColor(hsv[None], cv2.COLOR_HSV2BGR)[0]
    return [tuple(int(c) for c in colour) for colour in bgr]


def clip_segment(start: np.ndarray, end: np.ndarray, low: Sequence[float],
                 high: Sequence[float]) -> Optional[np.ndarray]:
    """Liang-Barsky clipping of a 2D segment to the rectangle
    ``[low, high]``; returns the clipped (2, 2) endpoints or None."""
    start = np.asarray(start, np.float64)
    delta = np.asarray(end, np.float64) - start
    t0, t1 = 0.0, 1.0
    for axis in range(2):
        for p, q in ((-delta[axis], start[axis] - low[axis]),
                     (delta[axis], high[axis] - start[axis])):
            if p == 0:
                if q < 0:
                    return None
                continue
            t = q / p
            if p < 0:
                t0 = max(t0, t)
            else:
                t1 = min(t1, t)
            if t0 > t1:
                return None
    return np.stack([start + t0 * delta, start + t1 * delta])


def tag_rectangle(anchor: Sequence[float], text: str,
                  image_shape: Sequence[int]) -> Tuple[int, int, int, int]:
    """(x1, y1, x2, y2) inclusive pixel rectangle of the label tag whose
    bottom-left corner is at ``anchor`` (x, y), shifted to lie inside an
    image of ``image_shape`` (H, W, ...)."""
    (text_w, text_h), baseline = cv2.getTextSize(text, _FONT, _FONT_SCALE, 1)
    height, width = image_shape[:2]
    tag_w, tag_h = text_w + 2, text_h + baseline + 2
    x1 = int(np.clip(round(anchor[0]), 0, max(width - tag_w, 0)))
    y2 = int(np.clip(round(anchor[1]), min(tag_h, height) - 1, height - 1))
    return x1, max(y2 - tag_h + 1, 0), min(x1 + tag_w - 1, width - 1), y2


def draw_projected_boxes(image: np.ndarray,
                         corners_uv: np.ndarray,
                         corner_valid: np.ndarray,
                         labels: np.ndarray,
                         class_names: Sequence[str],
                         scores: Optional[np.ndarray] = None,
                         palette: Optional[Sequence[Sequence[int]]] = None,
                         thickness: int = 1) -> np.ndarray:
    """Draw projected 3D boxes (12 edges each) with a class / score tag.

    An edge is drawn only when both its corners are valid (in front of the
    camera), clipped to the image. The tag goes at the top-most drawn point
    of the box; a box with no edge inside the image draws nothing.

    Args:
        image (np.ndarray): (H, W, 3) uint8 BGR; not modified.
        corners_uv (np.ndarray): (K, 8, 2) 0-based pixel coordinates of the
            corners in ``BaseInstance3DBoxes.corners`` order.
        corner_valid (np.ndarray): (K, 8) bool.
        labels (np.ndarray): (K,) int class indices into ``class_names``.
        class_names (Sequence[str]): Class names.
        scores (np.ndarray, optional): (K,) scores shown in the tag.
        palette (Sequence, optional): BGR colour per class. Defaults to
            :func:`default_palette`.
        thickness (int): Line thickness in pixels. Defaults to 1.

    Returns:
        np.ndarray: (H, W, 3) uint8 BGR copy with the boxes drawn.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError('image must be (H, W, 3) uint8 BGR, got '
                         f'{image.shape} {image.dtype}')
    corners_uv = np.asarray(corners_uv, np.float64)
    num_boxes = len(corners_uv)
    corner_valid = np.asarray(corner_valid, bool)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if corners_uv.shape != (num_boxes, 8, 2):
        raise ValueError(
            f'corners_uv must be (K, 8, 2), got {corners_uv.shape}')
    if corner_valid.shape != (num_boxes, 8):
        raise ValueError(f'corner_valid must be (K, 8) = ({num_boxes}, 8), '
                         f'got {corner_valid.shape}')
    if labels.shape != (num_boxes, ):
        raise ValueError(
            f'labels must be (K,) = ({num_boxes},), got {labels.shape}')
    if scores is not None:
        scores = np.asarray(scores, np.float64).reshape(-1)
        if scores.shape != (num_boxes, ):
            raise ValueError(
                f'scores must be (K,) = ({num_boxes},), got {scores.shape}')
    if num_boxes and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise ValueError(f'labels must be in [0, {len(class_names)}), got '
                         f'{labels.min()}..{labels.max()}')
    if palette is None:
        palette = default_palette(len(class_names))
    elif len(palette) < len(class_names):
        raise ValueError(f'palette has {len(palette)} colours for '
                         f'{len(class_names)} classes')

    canvas = image.copy()
    height, width = canvas.shape[:2]
    low = (-_PRECLIP_MARGIN, -_PRECLIP_MARGIN)
    high = (width - 1 + _PRECLIP_MARGIN, height - 1 + _PRECLIP_MARGIN)
    scale = 1 << _SHIFT
    for box in range(num_boxes):
        colour = tuple(int(c) for c in palette[labels[box]])
        drawn = []
        for i, j in BOX_EDGES:
            if not (corner_valid[box, i] and corner_valid[box, j]):
                continue
            segment = clip_segment(corners_uv[box, i], corners_uv[box, j], low,
                                   high)
            if segment is None:
                continue
            start, end = np.round(segment * scale).astype(np.int64)
            inside, start, end = cv2.clipLine(
                (0, 0, width * scale, height * scale),
                tuple(int(v) for v in start), tuple(int(v) for v in end))
            if not inside:
                continue
            cv2.line(canvas, start, end, colour, thickness, cv2.LINE_8, _SHIFT)
            drawn += [start, end]
        if not drawn:
            continue
        top = min(drawn, key=lambda point: point[1])
        text = class_names[labels[box]]
        if scores is not None:
            text = f'{text} {scores[box]:.2f}'
        x1, y1, x2, y2 = tag_rectangle((top[0] / scale, top[1] / scale), text,
                                       canvas.shape)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, cv2.FILLED)
        # Dark text on light colours, white text on dark ones.
        text_colour = (0, 0, 0) if sum(colour) > 380 else (255, 255, 255)
        (_, _), baseline = cv2.getTextSize(text, _FONT, _FONT_SCALE, 1)
        cv2.putText(canvas, text, (x1 + 1, y2 - baseline), _FONT, _FONT_SCALE,
                    text_colour, 1, cv2.LINE_AA)
    return canvas
