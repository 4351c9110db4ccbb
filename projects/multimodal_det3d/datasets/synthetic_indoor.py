"""Deterministic synthetic indoor scenes in the SUN RGB-D (mmdet3d v2 info)
format, for CPU demos and tests where SUN RGB-D cannot be downloaded.

A scene is seen by a camera at the origin of the upright DEPTH frame
(x right, y forward, z up), tilted down by a small pitch and 1.0-1.4 m above
the floor. The room is a floor, a back wall and sometimes a side wall; 2-5
boxes stand on the floor in front of the camera with a random yaw.

The design needs both modalities. 'table' and 'desk' boxes are drawn from
ONE size distribution, so their points (the detector uses xyz only) cannot
tell them apart; only their colour in the image can (red vs blue). The other
classes ('bed', 'chair', 'bookshelf') have clearly different sizes.

Conventions (the same as real SUN RGB-D in mmdet3d 1.4):

* ``depth2img = K' @ [[1, 0, 0], [0, 0, -1], [0, 1, 0]] @ Rt^T`` (as
  mmdet3d's ``update_sunrgbd_infos`` builds it), ``K'`` in the MATLAB 1-based
  pixel convention: a 0-based pixel is ``uv = points_cam2img(p, depth2img)
  - 1`` and pixel ``(i, j)`` has its centre at ``(i, j)``.
* ``bbox_3d = [x, y, z_gravity_centre, dx, dy, dz, yaw]`` with the yaw of
  :class:`DepthInstance3DBoxes` (0 along +x, increasing towards +y, i.e. a
  box point is ``centre + R_z(yaw) @ local``).
* ``bbox = [x1, y1, x2, y2]``: bounding box of the 8 projected corners,
  clipped to the image, 0-based pixels.

The image is rendered by casting one ray per pixel centre (exact occlusion,
flat shading per face); points lie on the box sides and tops (shifted a
little inwards, so that ``points_in_boxes`` sees them) and on the visible
floor and walls, all inside the camera frustum.
"""
import os
import os.path as osp
import pickle
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmdet3d.datasets import SUNRGBDDataset
from mmdet3d.registry import DATASETS
from mmdet3d.structures import DepthInstance3DBoxes

from projects.common.generated_data import begin_generation, finish_generation

GENERATOR_VERSION = 1

ImageSize = Tuple[int, int]  # (W, H)

SUNRGBD_CLASSES = tuple(SUNRGBDDataset.METAINFO['classes'])
# (dx, dy, dz) in metres: the ``bbox_coder.mean_sizes`` of mmdet3d's
# VoteNet / ImVoteNet SUN RGB-D configs, in SUNRGBD_CLASSES order.
SUNRGBD_MEAN_SIZES = {
    'bed': (2.114256, 1.620300, 0.927272),
    'table': (0.791118, 1.279516, 0.718182),
    'sofa': (0.923508, 1.867419, 0.845495),
    'chair': (0.591958, 0.552978, 0.827272),
    'toilet': (0.699104, 0.454178, 0.75625),
    'desk': (0.69519, 1.346299, 0.736364),
    'dresser': (0.528526, 1.002642, 1.172878),
    'night_stand': (0.500618, 0.632163, 0.683424),
    'bookshelf': (0.404671, 1.071108, 1.688889),
    'bathtub': (0.76584, 1.398258, 0.472728),
}

# The classes that occur in the synthetic scenes (a subset of the 10).
SYNTHETIC_CLASSES = ('bed', 'table', 'chair', 'desk', 'bookshelf')
# The pair with identical geometry, separable only by colour.
SAME_GEOMETRY_PAIR = ('table', 'desk')
_PAIR_MEAN = tuple(
    float(v)
    for v in np.mean([SUNRGBD_MEAN_SIZES[name] for name in SAME_GEOMETRY_PAIR],
                     axis=0))
SYNTHETIC_MEAN_SIZES = {
    name:
    (_PAIR_MEAN if name in SAME_GEOMETRY_PAIR else SUNRGBD_MEAN_SIZES[name])
    for name in SYNTHETIC_CLASSES
}
# Every size dimension is the mean times U(1 - SIZE_JITTER, 1 + SIZE_JITTER).
SIZE_JITTER = 0.15
# Base surface colours (RGB) before shading; saturated, far from the grey
# of the room, the two same-geometry classes are red and blue.
CLASS_COLOURS = {
    'bed': (225, 170, 50),
    'table': (210, 45, 40),
    'chair': (50, 170, 70),
    'desk': (45, 80, 215),
    'bookshelf': (150, 60, 175),
}
# Per-instance colour jitter: brightness factor range and per-channel offset.
_BRIGHTNESS_JITTER = (0.9, 1.1)
_CHANNEL_JITTER = 8

# Lambert shading: colour * (AMBIENT + (1 - AMBIENT) * max(0, n . LIGHT)).
AMBIENT = 0.6
LIGHT_DIRECTION = np.array([0.35, -0.45, 0.82]) / np.linalg.norm(
    [0.35, -0.45, 0.82])

# Depth (x right, y forward, z up) -> camera (x right, y down, z forward).
DEPTH_TO_CAMERA = np.array([[1., 0., 0.], [0., 0., -1.], [0., 1., 0.]])

# Box faces as (axis, sign) in the box frame; the ray caster and the point
# sampler index faces this way. The bottom (5) is never sampled.
BOX_FACES = ((0, 1), (0, -1), (1, 1), (1, -1), (2, 1), (2, -1))
TOP_FACE = 4
_SAMPLED_FACES = (0, 1, 2, 3, 4)
_MIN_INWARD = 0.002


def yaw_rotation(yaw: float) -> np.ndarray:
    """(3, 3) rotation about +z by ``yaw`` (from +x towards +y), the yaw of
    :class:`DepthInstance3DBoxes`: world = R @ box_local + centre."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.], [s, c, 0.], [0., 0., 1.]])


def camera_intrinsics(image_size: ImageSize, focal: float) -> np.ndarray:
    """(3, 3) K in SUN RGB-D's MATLAB 1-based pixel convention, principal
    point at the image centre: 0-based centre (W-1)/2, (H-1)/2, plus 1."""
    width, height = image_size
    return np.array([[focal, 0., (width - 1) / 2 + 1],
                     [0., focal, (height - 1) / 2 + 1], [0., 0., 1.]])


def camera_tilt(pitch: float) -> np.ndarray:
    """(3, 3) SUN RGB-D ``Rt`` (tilted depth camera -> upright depth frame)
    for a camera pitched DOWN by ``pitch`` radians: its forward axis is
    ``Rt[:, 1] = (0, cos, -sin)``."""
    c, s = np.cos(pitch), np.sin(pitch)
    return np.array([[1., 0., 0.], [0., c, s], [0., -s, c]])


def sunrgbd_depth2img(intrinsics: np.ndarray, tilt: np.ndarray) -> np.ndarray:
    """(3, 3) ``K @ [[1,0,0],[0,0,-1],[0,1,0]] @ Rt^T``, as mmdet3d's SUN
    RGB-D info converter builds ``depth2img``."""
    return intrinsics @ DEPTH_TO_CAMERA @ tilt.T


def project_depth_points(points: np.ndarray,
                         depth2img: np.ndarray) -> Tuple[np.ndarray, ...]:
    """Project upright-depth points with a SUN RGB-D ``depth2img``.

    Args:
        points (np.ndarray): (N, 3) xyz.
        depth2img (np.ndarray): (3, 3).

    Returns:
        tuple: ``uv`` (N, 2) 0-based pixel coordinates (MATLAB 1-based
        projection minus 1) and ``depth`` (N,) camera depth (> 0 in front).
    """
    hom = np.asarray(points, np.float64) @ np.asarray(depth2img).T
    depth = hom[:, 2]
    with np.errstate(divide='ignore', invalid='ignore'):
        uv = hom[:, :2] / depth[:, None] - 1
    return uv, depth


def pixel_rays(uv: np.ndarray, intrinsics: np.ndarray,
               tilt: np.ndarray) -> np.ndarray:
    """Directions (upright depth frame) of the rays from the camera centre
    through 0-based pixel coordinates ``uv`` (N, 2), scaled to camera depth
    1 (so ``t * ray`` is the point at camera depth ``t``). Returns (N, 3)."""
    cam = np.stack([(uv[:, 0] + 1 - intrinsics[0, 2]) / intrinsics[0, 0],
                    (uv[:, 1] + 1 - intrinsics[1, 2]) / intrinsics[1, 1],
                    np.ones(len(uv))], 1)
    return cam @ (tilt @ DEPTH_TO_CAMERA.T).T


def intersect_boxes(rays: np.ndarray,
                    boxes: np.ndarray) -> Tuple[np.ndarray, ...]:
    """Nearest hit of rays from the origin with yawed boxes (slab test in
    each box frame).

    Args:
        rays (np.ndarray): (N, 3) directions.
        boxes (np.ndarray): (M, 7) [x, y, z_gravity_centre, dx, dy, dz, yaw].

    Returns:
        tuple: ``t`` (N,) ray parameter of the hit (inf: none), ``box`` (N,)
        box index (-1: none), ``face`` (N,) index into ``BOX_FACES``.
    """
    num_rays = len(rays)
    best_t = np.full(num_rays, np.inf)
    best_box = np.full(num_rays, -1, np.int64)
    best_face = np.full(num_rays, -1, np.int64)
    for index, box in enumerate(np.asarray(boxes, np.float64)):
        rot = yaw_rotation(box[6])
        origin = -box[:3] @ rot  # R^T (0 - centre)
        local = rays @ rot  # R^T ray
        local = np.where(np.abs(local) < 1e-12, 1e-12, local)
        half = box[3:6] / 2
        t_low = (-half - origin) / local
        t_high = (half - origin) / local
        t_entry = np.minimum(t_low, t_high)
        axis = t_entry.argmax(1)
        t_near = t_entry.max(1)
        t_far = np.maximum(t_low, t_high).min(1)
        hit = (t_near <= t_far) & (t_near > 0) & (t_near < best_t)
        # A ray enters through the face facing against its direction.
        entry_sign = -np.sign(local[np.arange(num_rays), axis])
        face = 2 * axis + (entry_sign < 0)
        best_t[hit] = t_near[hit]
        best_box[hit] = index
        best_face[hit] = face[hit]
    return best_t, best_box, best_face


def intersect_room(rays: np.ndarray,
                   planes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Nearest hit of rays from the origin with the room planes.

    Args:
        rays (np.ndarray): (N, 3) directions.
        planes (np.ndarray): (Q, 4) ``[ux, uy, uz, d]``: the plane
            ``u . p = d`` with unit ``u`` pointing away from the camera and
            ``d > 0`` (the camera is inside the convex room).

    Returns:
        tuple: ``t`` (N,) (inf: none) and ``plane`` (N,) index (-1: none).
    """
    along = rays @ planes[:, :3].T  # (N, Q)
    with np.errstate(divide='ignore'):
        t = np.where(along > 1e-12, planes[:, 3] / along, np.inf)
    plane = t.argmin(1)
    best_t = t[np.arange(len(rays)), plane]
    plane[~np.isfinite(best_t)] = -1
    return best_t, plane


def shade(colour: Sequence[float], normal: np.ndarray) -> np.ndarray:
    """Flat Lambert shading of an RGB colour for a unit outward normal;
    returns uint8 (3,)."""
    factor = AMBIENT + (1 - AMBIENT) * max(
        0., float(np.dot(normal, LIGHT_DIRECTION)))
    return np.clip(np.round(np.asarray(colour) * factor), 0,
                   255).astype(np.uint8)


def box_face_normals(box: np.ndarray) -> np.ndarray:
    """(6, 3) outward unit normals of a box's faces in ``BOX_FACES`` order."""
    rot = yaw_rotation(box[6])
    local = np.zeros((6, 3))
    for face, (axis, sign) in enumerate(BOX_FACES):
        local[face, axis] = sign
    return local @ rot.T


def box_corners(boxes: np.ndarray) -> np.ndarray:
    """(M, 8, 3) corners in :attr:`DepthInstance3DBoxes.corners` order of
    (M, 7) gravity-centre boxes."""
    if len(boxes) == 0:
        return np.zeros((0, 8, 3))
    return DepthInstance3DBoxes(
        np.asarray(boxes, np.float32),
        origin=(0.5, 0.5, 0.5)).corners.numpy().astype(np.float64)


def _bev_corners(box: np.ndarray) -> np.ndarray:
    """(4, 2) bird's-eye-view corners of one box."""
    half = box[3:5] / 2
    local = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
    return local @ yaw_rotation(box[6])[:2, :2].T + box[:2]


def _bev_overlap(corners_a: np.ndarray, corners_b: np.ndarray,
                 margin: float) -> bool:
    """Whether two BEV rectangles come closer than ``margin`` along every
    separating axis (their edge normals)."""
    for corners in (corners_a, corners_b):
        for edge in (corners[1] - corners[0], corners[2] - corners[1]):
            axis = np.array([-edge[1], edge[0]]) / np.linalg.norm(edge)
            proj_a, proj_b = corners_a @ axis, corners_b @ axis
            if (proj_a.max() + margin < proj_b.min()
                    or proj_b.max() + margin < proj_a.min()):
                return False
    return True


def _sample_room(rng: np.random.Generator,
                 camera_height: float) -> Tuple[np.ndarray, np.ndarray]:
    """Floor, back wall and (half the time) a side wall perpendicular to it.

    Returns:
        tuple: ``planes`` (Q, 4) as in :func:`intersect_room` and their
        shaded RGB ``colours`` (Q, 3) uint8.
    """
    wall_yaw = rng.uniform(-np.pi / 9, np.pi / 9)
    back = np.array([np.sin(wall_yaw), np.cos(wall_yaw), 0.])
    planes = [
        np.array([0., 0., -1., camera_height]),
        np.append(back, rng.uniform(4.8, 6.5))
    ]
    base = [rng.uniform(105, 150), rng.uniform(165, 210)]
    if rng.random() < 0.5:
        side = np.array([np.cos(wall_yaw), -np.sin(wall_yaw), 0.])
        side *= rng.choice([-1., 1.])
        planes.append(np.append(side, rng.uniform(1.8, 3.0)))
        base.append(rng.uniform(165, 210))
    planes = np.stack(planes)
    # Nearly neutral greys; each surface gets a slight random tint.
    colours = np.stack([
        shade(grey + rng.uniform(-6, 6, 3), -plane[:3])
        for grey, plane in zip(base, planes)
    ])
    return planes, colours


def _place_boxes(rng: np.random.Generator, num_boxes: int, planes: np.ndarray,
                 camera_height: float, depth2img: np.ndarray,
                 half_fov_tan: float) -> Tuple[np.ndarray, List[str]]:
    """Boxes on the floor in front of the camera (all corners at camera
    depth > 0.3 m), inside the walls, not touching each other (rejection
    sampling, deterministic for ``rng``)."""
    boxes, names, footprints = [], [], []
    walls = planes[1:]
    for _ in range(num_boxes):
        name = SYNTHETIC_CLASSES[rng.integers(len(SYNTHETIC_CLASSES))]
        dims = np.asarray(SYNTHETIC_MEAN_SIZES[name]) * rng.uniform(
            1 - SIZE_JITTER, 1 + SIZE_JITTER, 3)
        yaw = rng.uniform(-np.pi, np.pi)
        for _attempt in range(30):
            y = rng.uniform(2.0, 5.0)
            x = rng.uniform(-0.8, 0.8) * y * half_fov_tan
            box = np.array([x, y, -camera_height + dims[2] / 2, *dims, yaw])
            footprint = _bev_corners(box)
            _, corner_depth = project_depth_points(
                box_corners(box[None])[0], depth2img)
            inside = (corner_depth > 0.3).all() and all(
                (footprint @ wall[:2] < wall[3] - 0.1).all() for wall in walls)
            if inside and not any(
                    _bev_overlap(footprint, other, 0.1)
                    for other in footprints):
                boxes.append(box)
                names.append(name)
                footprints.append(footprint)
                break
    return np.array(boxes).reshape(-1, 7), names


def _box_face_colours(rng: np.random.Generator, boxes: np.ndarray,
                      names: List[str]) -> np.ndarray:
    """(M, 6, 3) uint8 RGB of every face: jittered class colour, shaded."""
    colours = np.zeros((len(boxes), 6, 3), np.uint8)
    for index, (box, name) in enumerate(zip(boxes, names)):
        base = np.asarray(CLASS_COLOURS[name], np.float64)
        base = base * rng.uniform(*_BRIGHTNESS_JITTER) + rng.uniform(
            -_CHANNEL_JITTER, _CHANNEL_JITTER, 3)
        for face, normal in enumerate(box_face_normals(box)):
            colours[index, face] = shade(base, normal)
    return colours


def _render(image_size: ImageSize, intrinsics: np.ndarray, tilt: np.ndarray,
            planes: np.ndarray, plane_colours: np.ndarray, boxes: np.ndarray,
            face_colours: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Ray-cast every pixel centre. Returns the RGB image (H, W, 3) uint8
    and the box index seen at each pixel (H, W) int64 (-1: room)."""
    width, height = image_size
    jj, ii = np.mgrid[0:height, 0:width]
    uv = np.stack([ii.ravel(), jj.ravel()], 1).astype(np.float64)
    rays = pixel_rays(uv, intrinsics, tilt)
    t_room, plane = intersect_room(rays, planes)
    if (plane < 0).any():
        raise RuntimeError('a pixel ray leaves the room: the back wall must '
                           'face every ray')
    t_box, box, face = intersect_boxes(rays, boxes)
    on_box = t_box < t_room
    rgb = plane_colours[plane]
    rgb[on_box] = face_colours[box[on_box], face[on_box]]
    box[~on_box] = -1
    return rgb.reshape(height, width, 3), box.reshape(height, width)


def _in_frustum(points: np.ndarray, depth2img: np.ndarray,
                image_size: ImageSize) -> np.ndarray:
    """(N,) whether points project inside the image (rounding to a valid
    pixel, with a margin for the float32 storage) in front of the camera."""
    uv, depth = project_depth_points(points, depth2img)
    low = -0.5 + 0.01
    high = np.array(image_size) - 0.5 - 0.01
    with np.errstate(invalid='ignore'):
        return (depth > 0.05) & (uv >= low).all(1) & (uv < high).all(1)


def _sample_box_points(rng: np.random.Generator, num: int, boxes: np.ndarray,
                       face_colours: np.ndarray, depth2img: np.ndarray,
                       image_size: ImageSize,
                       noise: float) -> Tuple[np.ndarray, ...]:
    """Up to ``num`` points uniform by area on the sides and tops of the
    boxes, inside the frustum, moved inwards by 2 mm + |N(0, noise)| along
    the face normal. Returns xyz (n, 3), RGB uint8 (n, 3), box index (n,)."""
    faces = np.array([(k, f) for k in range(len(boxes))
                      for f in _SAMPLED_FACES]).reshape(-1, 2)
    face_axis = np.array([axis for axis, _ in BOX_FACES])
    face_sign = np.array([sign for _, sign in BOX_FACES])
    areas = np.array(
        [np.prod(np.delete(boxes[k, 3:6], face_axis[f])) for k, f in faces])
    xyz, rgb, owner = [], [], []
    kept = 0
    for _round in range(20):
        chunk = max(2 * num, 1000)
        pick = rng.choice(len(faces), chunk, p=areas / areas.sum())
        box_idx, face_idx = faces[pick, 0], faces[pick, 1]
        dims = boxes[box_idx, 3:6]
        local = (rng.random((chunk, 3)) - 0.5) * dims
        axis, sign = face_axis[face_idx], face_sign[face_idx]
        half = dims[np.arange(chunk), axis] / 2
        # At least 2 mm inside, so that float32 storage keeps the points
        # strictly inside for points_in_boxes (GroupFree3D's assignment).
        inward = np.minimum(_MIN_INWARD + np.abs(rng.normal(0, noise, chunk)),
                            half)
        local[np.arange(chunk), axis] = sign * (half - inward)
        points = np.empty_like(local)
        for k, box in enumerate(boxes):
            sel = box_idx == k
            points[sel] = local[sel] @ yaw_rotation(box[6]).T + box[:3]
        keep = _in_frustum(points, depth2img, image_size)
        xyz.append(points[keep])
        rgb.append(face_colours[box_idx[keep], face_idx[keep]])
        owner.append(box_idx[keep])
        kept += int(keep.sum())
        if kept >= num:
            break
    return (np.concatenate(xyz)[:num], np.concatenate(rgb)[:num],
            np.concatenate(owner)[:num])


def _sample_room_points(rng: np.random.Generator, num: int,
                        intrinsics: np.ndarray, tilt: np.ndarray,
                        planes: np.ndarray, plane_colours: np.ndarray,
                        boxes: np.ndarray, image_size: ImageSize,
                        noise: float) -> Tuple[np.ndarray, np.ndarray]:
    """``num`` points on the floor and walls where the camera sees them (a
    depth sensor's sampling: uniform over the image), with depth noise
    N(0, noise) clipped to 2.5 sigma. Returns xyz, RGB uint8."""
    width, height = image_size
    xyz, rgb = [], []
    kept = 0
    for _round in range(50):
        chunk = max(2 * num, 1000)
        # The same margin as _in_frustum.
        uv = rng.random((chunk, 2)) * (width - 0.02, height - 0.02) - 0.49
        rays = pixel_rays(uv, intrinsics, tilt)
        t_room, plane = intersect_room(rays, planes)
        t_box, _, _ = intersect_boxes(rays, boxes)
        keep = (t_room < t_box) & (plane >= 0)
        # Depth noise along the ray: the point keeps its pixel, and stays
        # out of the boxes (the ray meets none before the room).
        offset = np.clip(
            rng.normal(0, noise, chunk), -2.5 * noise, 2.5 * noise)
        points = rays[keep] * (t_room[keep] + offset[keep])[:, None]
        xyz.append(points)
        rgb.append(plane_colours[plane[keep]])
        kept += len(points)
        if kept >= num:
            break
    if kept < num:
        raise RuntimeError(
            f'only {kept} of {num} room points could be sampled')
    return np.concatenate(xyz)[:num], np.concatenate(rgb)[:num]


def _image_box(corners: np.ndarray, depth2img: np.ndarray,
               image_size: ImageSize) -> List[float]:
    """[x1, y1, x2, y2] of the projected (8, 3) corners clipped to the
    image, 0-based pixels."""
    uv, depth = project_depth_points(corners, depth2img)
    if (depth <= 0).any():
        raise ValueError('a box corner lies behind the camera')
    width, height = image_size
    x1, y1 = np.clip(uv.min(0), 0, (width - 1, height - 1))
    x2, y2 = np.clip(uv.max(0), 0, (width - 1, height - 1))
    return [float(x1), float(y1), float(x2), float(y2)]


def render_scene(rng: np.random.Generator,
                 image_size: ImageSize = (256, 192),
                 num_points: int = 5000,
                 num_boxes: Tuple[int, int] = (2, 5),
                 object_point_fraction: float = 0.5,
                 point_noise: float = 0.01,
                 min_visible_pixels: Optional[int] = None) -> Dict:
    """Render one synthetic scene.

    Args:
        rng (np.random.Generator): The only source of randomness.
        image_size (tuple[int, int]): (W, H). Defaults to (256, 192).
        num_points (int): P, the number of points. Defaults to 5000.
        num_boxes (tuple[int, int]): Inclusive range of boxes placed (some
            may be dropped as invisible). Defaults to (2, 5).
        object_point_fraction (float): Target share of points on boxes (by
            area among them; less when boxes leave the frustum). Defaults to
            0.5.
        point_noise (float): Sensor noise sigma in metres. Defaults to 0.01.
        min_visible_pixels (int, optional): Boxes covering fewer pixels are
            dropped. Defaults to max(20, W * H // 1000).

    Returns:
        dict: ``points`` (P, 6) float32 x, y, z, r, g, b (colours in [0, 1],
        as SUN RGB-D), ``point_instance_ids`` (P,) int64 index into
        ``instances`` (-1: floor/wall), ``image`` (H, W, 3) uint8 BGR,
        ``pixel_instance_ids`` (H, W) int64, ``depth2img`` (3, 3),
        ``intrinsics`` (3, 3) 1-based K, ``tilt`` (3, 3) Rt,
        ``camera_height`` float, ``instances`` (list of dicts with
        ``bbox_3d``, ``bbox_label_3d``, ``bbox``, ``bbox_label``).
    """
    width, height = (int(v) for v in image_size)
    if width < 8 or height < 8:
        raise ValueError(f'image_size (W, H) must be at least 8x8, got '
                         f'{tuple(image_size)}')
    if num_points < 1:
        raise ValueError(f'num_points must be positive, got {num_points}')
    if not 0 <= object_point_fraction <= 1:
        raise ValueError('object_point_fraction must be in [0, 1], got '
                         f'{object_point_fraction}')
    image_size = (width, height)
    if min_visible_pixels is None:
        min_visible_pixels = max(20, width * height // 1000)

    camera_height = rng.uniform(1.0, 1.4)
    focal = rng.uniform(0.85, 0.95) * width
    intrinsics = camera_intrinsics(image_size, focal)
    tilt = camera_tilt(np.deg2rad(rng.uniform(4., 14.)))
    depth2img = sunrgbd_depth2img(intrinsics, tilt)
    planes, plane_colours = _sample_room(rng, camera_height)

    for _attempt in range(20):
        boxes, names = _place_boxes(
            rng, int(rng.integers(num_boxes[0], num_boxes[1] + 1)), planes,
            camera_height, depth2img, (width / 2) / focal)
        face_colours = _box_face_colours(rng, boxes, names)
        # Dropping a box can uncover others, never hide them: one pass of
        # dropping, then a re-render, is enough.
        _, pixel_box = _render(image_size, intrinsics, tilt, planes,
                               plane_colours, boxes, face_colours)
        counts = np.bincount(pixel_box[pixel_box >= 0], minlength=len(boxes))
        visible = counts >= min_visible_pixels
        if visible.any():
            break
    else:
        raise RuntimeError('could not place a visible box in 20 attempts')
    boxes, face_colours = boxes[visible], face_colours[visible]
    names = [name for name, keep in zip(names, visible) if keep]
    rgb_image, pixel_box = _render(image_size, intrinsics, tilt, planes,
                                   plane_colours, boxes, face_colours)

    num_box_points = int(round(object_point_fraction * num_points))
    box_xyz, box_rgb, box_owner = _sample_box_points(rng, num_box_points,
                                                     boxes, face_colours,
                                                     depth2img, image_size,
                                                     point_noise)
    room_xyz, room_rgb = _sample_room_points(rng, num_points - len(box_xyz),
                                             intrinsics, tilt, planes,
                                             plane_colours, boxes, image_size,
                                             point_noise)
    order = rng.permutation(num_points)
    xyz = np.concatenate([box_xyz, room_xyz])[order]
    rgb = np.concatenate([box_rgb, room_rgb])[order]
    owner = np.concatenate([box_owner,
                            np.full(len(room_xyz), -1, np.int64)])[order]
    points = np.concatenate([xyz, rgb / 255.], 1).astype(np.float32)

    corners = box_corners(boxes)
    instances = []
    for box, name, box_corner in zip(boxes, names, corners):
        label = SUNRGBD_CLASSES.index(name)
        instances.append(
            dict(
                bbox_3d=[float(v) for v in box],
                bbox_label_3d=label,
                bbox=_image_box(box_corner, depth2img, image_size),
                bbox_label=label))
    return dict(
        points=points,
        point_instance_ids=owner,
        image=np.ascontiguousarray(rgb_image[..., ::-1]),
        pixel_instance_ids=pixel_box,
        depth2img=depth2img,
        intrinsics=intrinsics,
        tilt=tilt,
        camera_height=float(camera_height),
        instances=instances)


def _check_params(num_train: int, num_val: int, seed: int,
                  image_size: Sequence[int], num_points: int) -> None:
    for name, value in (('num_train', num_train), ('num_val', num_val),
                        ('seed', seed)):
        if int(value) != value or value < 0:
            raise ValueError(
                f'{name} must be a non-negative integer, got {value!r}')
    if len(image_size) != 2 or min(image_size) < 8:
        raise ValueError('image_size must be (W, H) with both at least 8, '
                         f'got {image_size!r}')
    if num_points < 1:
        raise ValueError(f'num_points must be positive, got {num_points!r}')


def generate_synthetic_indoor(root: str,
                              num_train: int,
                              num_val: int,
                              seed: int = 0,
                              image_size: ImageSize = (256, 192),
                              num_points: int = 5000) -> str:
    """Write the synthetic set in the mmdet3d SUN RGB-D v2 layout, unless
    ``root`` already holds it with the same parameters.

    Layout: ``points/{idx:06d}.bin`` (float32 x, y, z, r, g, b),
    ``images/{idx:06d}.jpg``, ``synthetic_infos_{train,val}.pkl`` and the
    completion marker ``synthetic_meta.json``. Train scenes have indices
    ``0..num_train-1``, val scenes follow. Scene ``i`` of a split is drawn
    from ``np.random.default_rng([seed, split_id, i])``, so the output is
    the same bytes for the same arguments, and a split does not change
    with the size of the other split.

    Safe when several processes call it at once: each writes a private
    folder and renames it to ``root``; the first rename wins.

    Returns:
        str: ``root``.
    """
    _check_params(num_train, num_val, seed, image_size, num_points)
    params = dict(
        version=GENERATOR_VERSION,
        num_train=int(num_train),
        num_val=int(num_val),
        seed=int(seed),
        image_size=[int(v) for v in image_size],
        num_points=int(num_points))
    tmp = begin_generation(root, params)
    if tmp is None:
        return root
    width, height = params['image_size']
    os.makedirs(osp.join(tmp, 'points'))
    os.makedirs(osp.join(tmp, 'images'))
    categories = {name: i for i, name in enumerate(SUNRGBD_CLASSES)}
    splits = (('train', params['num_train']), ('val', params['num_val']))
    index = 0
    for split_id, (split, count) in enumerate(splits):
        data_list = []
        for local in range(count):
            scene = render_scene(
                np.random.default_rng([params['seed'], split_id, local]),
                (width, height), params['num_points'])
            name = f'{index:06d}'
            scene['points'].tofile(osp.join(tmp, 'points', name + '.bin'))
            cv2.imwrite(
                osp.join(tmp, 'images', name + '.jpg'), scene['image'],
                [cv2.IMWRITE_JPEG_QUALITY, 95])
            data_list.append(
                dict(
                    sample_idx=index,
                    lidar_points=dict(
                        num_pts_feats=6, lidar_path=name + '.bin'),
                    images=dict(
                        CAM0=dict(
                            img_path=name + '.jpg',
                            height=height,
                            width=width,
                            depth2img=scene['depth2img'].tolist())),
                    instances=scene['instances']))
            index += 1
        infos = dict(
            metainfo=dict(
                categories=categories,
                dataset='synthetic_indoor',
                info_version='1.1'),
            data_list=data_list)
        with open(osp.join(tmp, f'synthetic_infos_{split}.pkl'), 'wb') as f:
            pickle.dump(infos, f, protocol=4)
    return finish_generation(tmp, root, params)


@DATASETS.register_module()
class SyntheticIndoorDataset(SUNRGBDDataset):
    """The synthetic indoor scenes of this module, in SUN RGB-D format,
    generated into ``data_root`` on first use; loading is SUN RGB-D's.

    The label space is SUN RGB-D's 10 classes; only ``SYNTHETIC_CLASSES``
    occur (pass ``metainfo=dict(classes=SYNTHETIC_CLASSES)`` to train on
    those 5 only).

    Args:
        data_root (str): Where the set is (or will be) written.
        ann_file (str, optional): Defaults to ``synthetic_infos_val.pkl``
            with ``test_mode=True``, else ``synthetic_infos_train.pkl``.
        num_train (int): Training scenes. Defaults to 200.
        num_val (int): Validation scenes. Defaults to 50.
        seed (int): Generator seed. Defaults to 0.
        image_size (tuple[int, int]): (W, H). Defaults to (256, 192).
        num_points (int): Points per scene. Defaults to 5000.
        data_prefix (dict): Defaults to ``dict(pts='points', img='images')``.
        test_mode (bool): Defaults to False.
        **kwargs: Passed to :class:`SUNRGBDDataset`.
    """

    def __init__(self,
                 data_root: str,
                 ann_file: Optional[str] = None,
                 num_train: int = 200,
                 num_val: int = 50,
                 seed: int = 0,
                 image_size: ImageSize = (256, 192),
                 num_points: int = 5000,
                 data_prefix: dict = dict(pts='points', img='images'),
                 test_mode: bool = False,
                 **kwargs) -> None:
        generate_synthetic_indoor(data_root, num_train, num_val, seed,
                                  tuple(image_size), num_points)
        if ann_file is None:
            split = 'val' if test_mode else 'train'
            ann_file = f'synthetic_infos_{split}.pkl'
        super().__init__(
            data_root=data_root,
            ann_file=ann_file,
            data_prefix=data_prefix,
            test_mode=test_mode,
            **kwargs)
