"""Projecting (augmented) 3D points into the pixels and patches of the
network's input image(s).

A seed point of the detector lives in the AUGMENTED point-cloud frame, and
the image the ViT sees is the RESIZED / CROPPED / FLIPPED / PADDED image. The
calibration (``depth2img`` for SUN RGB-D, one ``lidar2img`` per view for
multi-view ScanNet) maps the ORIGINAL point cloud to the ORIGINAL image. The
functions here walk that chain explicitly:

1. :func:`undo_points_augmentation` inverts the 3D augmentation recorded in
   the sample's metainfo (``transformation_3d_flow``, ``pcd_rotation``,
   ``pcd_scale_factor``, ``pcd_trans``, ``pcd_horizontal_flip``,
   ``pcd_vertical_flip``), in reverse order.
2. :func:`project_points` applies the projection matrix.
3. ``pixel_origin`` moves the calibration's pixel origin to 0 (SUN RGB-D's
   calibration is MATLAB, 1-based).
4. :func:`to_network_pixels` applies the image augmentation recorded in the
   metainfo (``scale_factor``, ``img_crop_offset``, ``flip`` /
   ``flip_direction``), in that order (resize, crop, flip).
5. Points behind the camera or outside the (unpadded) image are invalid.
6. :func:`patch_indices` turns network-input pixels into ViT patch indices;
   mmdet pads at the bottom / right, so padding does not move pixels, but a
   pixel can land in a part of the padded image that the patch grid does not
   cover, which is invalid too.

All functions take torch tensors for points and accept numpy arrays, lists
or tensors for the matrices and parameters stored in the metainfo.
"""
import math
from numbers import Number
from typing import List, Sequence, Tuple, Union

import numpy as np
import torch
from mmdet3d.models.layers.fusion_layers.coord_transform import \
    apply_3d_transformation

Tensor = torch.Tensor

# Axis negated by a BEV flip, per point-cloud coordinate system (as in
# mmdet3d's ``DepthPoints`` / ``LiDARPoints`` / ``CameraPoints.flip``).
FLIP_AXES = {
    'DEPTH': {
        'HF': 0,
        'VF': 1
    },
    'LIDAR': {
        'HF': 1,
        'VF': 0
    },
    'CAMERA': {
        'HF': 0,
        'VF': 2
    },
}

# Metainfo keys of the image augmentation; in a multi-view sample each may
# hold one value per view.
PER_VIEW_KEYS = ('img_shape', 'ori_shape', 'pad_shape', 'scale_factor',
                 'img_crop_offset', 'flip', 'flip_direction')

_FLOW_KEYS = {
    'R': 'pcd_rotation',
    'S': 'pcd_scale_factor',
    'T': 'pcd_trans',
    'HF': 'pcd_horizontal_flip',
    'VF': 'pcd_vertical_flip',
}


def _to_tensor(value, like: Tensor, key: str) -> Tensor:
    """A metainfo value (tensor / ndarray / list / number) as a tensor with
    the dtype and device of ``like``."""
    try:
        if isinstance(value, Tensor):
            return value.detach().to(device=like.device, dtype=like.dtype)
        return torch.as_tensor(
            np.asarray(value, dtype=np.float64),
            dtype=like.dtype,
            device=like.device)
    except (TypeError, ValueError) as err:
        raise TypeError(f'img_meta[{key!r}] must be numeric, got '
                        f'{type(value).__name__}: {value!r}') from err


def _check_points(xyz: Tensor, name: str = 'xyz') -> None:
    if not isinstance(xyz, Tensor) or xyz.dim() != 2 or xyz.shape[1] != 3:
        shape = tuple(xyz.shape) if hasattr(xyz, 'shape') else type(xyz)
        raise ValueError(f'{name} must be a (N, 3) tensor, got {shape}')


def _at_least_float32(xyz: Tensor) -> Tensor:
    # Half precision resolves ~0.5 px at 1000 px: project in float32.
    if xyz.dtype in (torch.float16, torch.bfloat16):
        return xyz.float()
    return xyz


def _image_hw(img_meta: dict, key: str = 'img_shape') -> Tuple[int, int]:
    if key not in img_meta:
        raise KeyError(f'img_meta has no {key!r}; it is needed to know the '
                       f'image size (got keys {sorted(img_meta)})')
    shape = img_meta[key]
    if len(shape) < 2:
        raise ValueError(f'img_meta[{key!r}] must be (h, w[, c]), '
                         f'got {shape!r}')
    return int(shape[0]), int(shape[1])


def _recorded_3d_augmentation(img_meta: dict) -> dict:
    """The checked 3D augmentation record of ``img_meta``: its flow and
    the parameters the flow uses, as plain numbers / float64 arrays.

    Raises:
        ValueError: Unknown op in the flow, 'R' or 'T' more than once, a
            rotation that is not 3x3, a translation that is not 3 values or
            a scale that is not one non-zero number.
        KeyError: An op of the flow without its parameter.
        TypeError: A parameter that is not numeric.
    """
    if 'transformation_3d_flow' not in img_meta:
        raise KeyError(
            "img_meta has no 'transformation_3d_flow': without it the "
            'projection cannot tell whether the points were augmented. '
            'mmdet3d records it in GlobalRotScaleTrans and RandomFlip3D; a '
            'test pipeline records "nothing applied" with the identity '
            'GlobalRotScaleTrans(rot_range=[0, 0], scale_ratio_range=[1, '
            '1]) and RandomFlip3D(flip_ratio_bev_horizontal=0), as '
            "mmdet3d's MultiScaleFlipAug3D does. Keep the key in "
            "Pack3DDetInputs' meta_keys.")
    flow = list(img_meta['transformation_3d_flow'])
    for op in flow:
        if op not in _FLOW_KEYS:
            raise ValueError(f'Unknown op {op!r} in transformation_3d_flow '
                             f'{flow}; expected {sorted(_FLOW_KEYS)}')
    for op in ('R', 'T'):
        # A second GlobalRotScaleTrans overwrites these parameters, so
        # the meta no longer describes the first one.
        if flow.count(op) > 1:
            raise ValueError(
                f'transformation_3d_flow {flow} has {op!r} more than once, '
                f'but the meta keeps only the last {_FLOW_KEYS[op]!r}')
    record = dict(transformation_3d_flow=flow)
    for op in flow:
        key = _FLOW_KEYS[op]
        if key not in img_meta:
            raise KeyError(f'transformation_3d_flow has {op!r} but img_meta '
                           f'has no {key!r}')
        value = img_meta[key]
        if op in ('HF', 'VF'):
            record[key] = bool(value)
            continue
        if isinstance(value, Tensor):
            value = value.detach().cpu()
        try:
            value = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f'img_meta[{key!r}] must be numeric, got '
                            f'{type(value).__name__}: {value!r}') from err
        if op == 'R' and value.shape != (3, 3):
            raise ValueError(f'img_meta[{key!r}] must be 3x3, got '
                             f'{value.shape}')
        if op == 'T' and value.size != 3:
            raise ValueError(f'img_meta[{key!r}] must hold 3 values, got '
                             f'{value.shape}')
        if op == 'S' and (value.size != 1 or value.item() == 0):
            raise ValueError(f'img_meta[{key!r}] must be a non-zero number, '
                             f'got {value!r}')
        record[key] = value.item() if op == 'S' else value.reshape(
            value.shape if op == 'R' else (3, ))
    return record


def undo_points_augmentation(xyz: Tensor,
                             img_meta: dict,
                             coord_type: str = 'DEPTH') -> Tensor:
    """Map points from the augmented point cloud back to the original one.

    The operations listed in ``img_meta['transformation_3d_flow']`` (added
    by ``RandomFlip3D`` as 'HF' / 'VF' and by ``GlobalRotScaleTrans`` as
    'R', 'S', 'T') are inverted in reverse order: 'T' subtracts
    ``pcd_trans``, 'S' divides by ``pcd_scale_factor``, 'R' multiplies by
    the inverse of ``pcd_rotation`` (mmdet3d rotates as ``xyz @
    pcd_rotation``), 'HF' / 'VF' negate the flipped axis if
    ``pcd_horizontal_flip`` / ``pcd_vertical_flip`` is true. A meta
    without a flow means no augmentation.

    The inversion is mmdet3d's ``apply_3d_transformation(..., reverse=True)``
    (``mmdet3d/models/layers/fusion_layers/coord_transform.py``). This
    function adds what that one does not do:

    - it checks the record first: mmdet3d silently uses the identity for a
      parameter missing from the meta, applies the last 'R' / 'T'
      parameters twice when a second ``GlobalRotScaleTrans`` ran, and only
      ``assert``-s that the ops are known; here each is an error naming the
      op and the key;
    - it hands mmdet3d float32 points and float64 numpy parameters: mmdet3d's
      point structures cast the points to float32 but build the rotation in
      the input's dtype, so float64 or half input fails in the matrix
      product (and half in the inversion), and a tensor ``pcd_rotation``
      (as ``GlobalRotScaleTrans`` stores it) makes ``torch.tensor`` warn on
      every call.

    Args:
        xyz (Tensor): (N, 3) points in the augmented frame.
        img_meta (dict): Sample metainfo.
        coord_type (str): 'DEPTH', 'LIDAR' or 'CAMERA'; decides which axis a
            flip negates. Defaults to 'DEPTH'.

    Returns:
        Tensor: (N, 3) points in the original (calibrated) frame, computed
        in float32 (mmdet3d's precision) and returned in the input's dtype
        (float32 for half-precision input, as in all functions here).
    """
    _check_points(xyz)
    if coord_type not in FLIP_AXES:
        raise ValueError(f'coord_type must be one of {sorted(FLIP_AXES)}, '
                         f'got {coord_type!r}')
    record = _recorded_3d_augmentation(img_meta)
    dtype = _at_least_float32(xyz).dtype
    restored = apply_3d_transformation(
        xyz.float(), coord_type, record, reverse=True)
    return restored.to(dtype)


def _as_matrix(proj_mat, like: Tensor, key: str = 'proj_mat') -> Tensor:
    mat = _to_tensor(proj_mat, like, key)
    if mat.shape not in ((3, 3), (3, 4), (4, 4)):
        raise ValueError(f'{key} must be 3x3, 3x4 or 4x4, got '
                         f'{tuple(mat.shape)}')
    return mat


def project_points(xyz: Tensor, proj_mat) -> Tuple[Tensor, Tensor]:
    """Pinhole projection of 3D points with a projection matrix.

    A 3x3 matrix acts on ``xyz``; a 3x4 or 4x4 one on ``(x, y, z, 1)`` (the
    4th row of a 4x4 matrix does not matter). As in mmdet3d's
    ``points_cam2img``: ``(u', v', d) = P [xyz; 1]``, ``uv = (u'/d, v'/d)``.

    Args:
        xyz (Tensor): (N, 3) points.
        proj_mat (Tensor | ndarray | list): 3x3, 3x4 or 4x4 matrix.

    Returns:
        tuple[Tensor, Tensor]: ``uv`` (N, 2) and camera ``depth`` (N,).
        For points with ``|depth| < 1e-6`` the division uses 1e-6 (same
        sign) so ``uv`` stays finite; such points are behind any sensible
        ``min_depth`` and therefore invalid anyway.
    """
    _check_points(xyz)
    xyz = _at_least_float32(xyz)
    mat = _as_matrix(proj_mat, xyz)
    rows = mat[:3, :3]
    cam = xyz @ rows.T
    if mat.shape[1] == 4:
        cam = cam + mat[:3, 3]
    depth = cam[:, 2]
    tiny = 1e-6
    sign = torch.where(depth < 0, -torch.ones_like(depth),
                       torch.ones_like(depth))
    safe = torch.where(depth.abs() < tiny, sign * tiny, depth)
    uv = cam[:, :2] / safe[:, None]
    return uv, depth


def _required(img_meta: dict, key: str, how: str):
    """``img_meta[key]``, or a KeyError naming the key: a missing record is
    never read as "not applied"."""
    if key not in img_meta:
        raise KeyError(f'img_meta has no {key!r}: the projection cannot tell '
                       f'whether the image was {how}. Keep {key!r} in '
                       "Pack3DDetInputs' meta_keys and put the transform "
                       'that records it in the pipeline (see '
                       'PROJECTION_TRANSFORMS).')
    return img_meta[key]


def _scale_factor_wh(img_meta: dict, like: Tensor) -> Tensor:
    value = _required(img_meta, 'scale_factor', 'resized (Resize)')
    if isinstance(value, Number):
        return like.new_tensor([float(value), float(value)])
    scale = _to_tensor(value, like, 'scale_factor').flatten()
    if scale.numel() not in (1, 2, 4):
        raise ValueError('img_meta[\'scale_factor\'] must be a number, '
                         f'(w, h) or (w, h, w, h), got {value!r}')
    return scale[:2] if scale.numel() > 1 else scale.repeat(2)


def to_network_pixels(uv: Tensor, img_meta: dict) -> Tensor:
    """Apply the image augmentation recorded in the meta to pixel coords.

    Order: resize (``uv * scale_factor``, with ``scale_factor`` = (w, h)
    as set by mmcv/mmdet ``Resize``), crop (``uv - img_crop_offset``, with
    the offset as (x, y) like mmdet3d's crops set it), flip (``flip`` true:
    'horizontal' ``u -> w - u``, 'vertical' ``v -> h - v``, 'diagonal'
    both, with (h, w) = ``img_shape``, the size AFTER resize and crop; the
    same formula mmcv / mmdet use for boxes). ``scale_factor`` and ``flip``
    must be recorded (a missing one is a KeyError, never "not applied");
    ``img_crop_offset`` is recorded only by the crops that apply one
    (the pipeline check, :func:`check_projection_pipeline`, rejects any
    other transform that could move pixels). ``flip`` without
    ``flip_direction`` means horizontal (mmdet3d's assumption). Resize
    commutes with flip, crop does not: the pipeline must crop before it
    flips.

    Args:
        uv (Tensor): (N, 2) pixel coordinates (x, y) in the original image,
            0-based.
        img_meta (dict): Metainfo of the (single-view) image.

    Returns:
        Tensor: (N, 2) coordinates in the network-input image.
    """
    if not isinstance(uv, Tensor) or uv.dim() != 2 or uv.shape[1] != 2:
        raise ValueError(f'uv must be a (N, 2) tensor, got '
                         f'{getattr(uv, "shape", type(uv))}')
    uv = uv.clone() if uv.is_floating_point() else uv.float()
    uv = uv * _scale_factor_wh(img_meta, uv)
    if img_meta.get('img_crop_offset') is not None:
        offset = _to_tensor(img_meta['img_crop_offset'], uv,
                            'img_crop_offset').flatten()
        if offset.numel() != 2:
            raise ValueError('img_meta[\'img_crop_offset\'] must be (x, y), '
                             f'got {img_meta["img_crop_offset"]!r}')
        uv = uv - offset
    if bool(_required(img_meta, 'flip', 'flipped (RandomFlip3D)')):
        direction = img_meta.get('flip_direction') or 'horizontal'
        if direction not in ('horizontal', 'vertical', 'diagonal'):
            raise ValueError(f'img_meta[\'flip_direction\'] must be '
                             f'horizontal, vertical or diagonal, got '
                             f'{direction!r}')
        img_h, img_w = _image_hw(img_meta)
        if direction in ('horizontal', 'diagonal'):
            uv[:, 0] = img_w - uv[:, 0]
        if direction in ('vertical', 'diagonal'):
            uv[:, 1] = img_h - uv[:, 1]
    return uv


def _is_matrix_stack(value) -> bool:
    """Whether a projection entry holds one matrix per view."""
    if isinstance(value, dict):
        raise TypeError('A projection matrix given as a dict (e.g. NeRF-Det '
                        'style {extrinsic, intrinsic}) is not supported; '
                        'compose it into one (V, 4, 4) lidar2img array')
    if isinstance(value, (list, tuple)):
        if len(value) == 0:
            raise ValueError('Empty projection matrix list')
        return np.ndim(value[0]) == 2 if not isinstance(
            value[0], Tensor) else value[0].dim() == 2
    ndim = value.dim() if isinstance(value, Tensor) else np.ndim(value)
    if ndim not in (2, 3):
        raise ValueError(f'A projection matrix must be (r, c) or (V, r, c), '
                         f'got {ndim} dims')
    return ndim == 3


def _per_view(key: str, value, num_views: int) -> bool:
    """Whether ``value`` of meta ``key`` holds one entry per view."""
    if isinstance(value, (str, bool, Number, np.generic)) or value is None:
        return False
    if np.ndim(value) == 0:
        return False
    if key in ('flip', 'flip_direction'):
        per_view = True
    else:
        # Shared entries are flat ((h, w), (w, h), (x, y)); per-view ones
        # are nested, one entry per view.
        per_view = len(value) > 0 and np.ndim(value[0]) >= 1
    if per_view and len(value) != num_views:
        raise ValueError(f'img_meta[{key!r}] has {len(value)} entries but '
                         f'the projection has {num_views} views')
    return per_view


def split_views(img_meta: dict, proj_key: str = 'depth2img') -> List[dict]:
    """Split a sample's metainfo into one single-view meta per camera view.

    ``img_meta[proj_key]`` is one 3x3 / 3x4 / 4x4 matrix (a single image) or
    a (V, 4, 4) array / a list of V matrices (multi-view). In the multi-view
    case each of :data:`PER_VIEW_KEYS` may be a per-view list (as
    ``MultiViewWrapper`` collects them) or a single value shared by all
    views; the 3D augmentation keys are always shared. A per-view list is
    nested (one (h, w) / (w, h) / (x, y) per view; ``flip`` and
    ``flip_direction`` are flat lists). The matrices map to the pixels of
    each view BEFORE the image augmentation recorded in the meta: a loader
    that folds the resize into ``lidar2img`` must not also record a
    ``scale_factor``.

    Args:
        img_meta (dict): Sample metainfo.
        proj_key (str): Key of the projection matrix. Defaults to
            'depth2img'.

    Returns:
        list[dict]: V metas, each with a single matrix under ``proj_key``
        and single values for the per-view keys. A single-image meta is
        returned as ``[img_meta]``.
    """
    if proj_key not in img_meta:
        raise KeyError(f'img_meta has no projection matrix {proj_key!r} '
                       f'(got keys {sorted(img_meta)})')
    mats = img_meta[proj_key]
    if not _is_matrix_stack(mats):
        return [img_meta]
    num_views = len(mats)
    views = []
    for view in range(num_views):
        meta = dict(img_meta)
        meta[proj_key] = mats[view]
        for key in PER_VIEW_KEYS:
            if key in img_meta and _per_view(key, img_meta[key], num_views):
                meta[key] = img_meta[key][view]
        views.append(meta)
    return views


def _single_view_matrix(img_meta: dict, proj_key: str) -> object:
    if proj_key not in img_meta:
        raise KeyError(f'img_meta has no projection matrix {proj_key!r} '
                       f'(got keys {sorted(img_meta)})')
    if _is_matrix_stack(img_meta[proj_key]):
        raise ValueError(f'img_meta[{proj_key!r}] holds several views; '
                         'split it with split_views() or use '
                         'seeds_to_patches()')
    return img_meta[proj_key]


def _project_single_view(xyz_orig: Tensor, img_meta: dict, proj_key: str,
                         pixel_origin: float) -> Tuple[Tensor, Tensor]:
    """Original-frame points -> (network pixels (N, 2), depth (N,))."""
    proj_mat = _single_view_matrix(img_meta, proj_key)
    uv, depth = project_points(xyz_orig, proj_mat)
    uv = to_network_pixels(uv - pixel_origin, img_meta)
    return uv, depth


def _inside_image(uv: Tensor, img_meta: dict) -> Tensor:
    img_h, img_w = _image_hw(img_meta)
    finite = torch.isfinite(uv).all(dim=1)
    return finite & (uv[:, 0] >= 0) & (uv[:, 0] < img_w) & (uv[:, 1] >= 0) & (
        uv[:, 1] < img_h)


def points_to_image(xyz: Tensor,
                    img_meta: dict,
                    proj_key: str = 'depth2img',
                    pixel_origin: float = 1.0,
                    coord_type: str = 'DEPTH',
                    min_depth: float = 1e-3) -> Tuple[Tensor, Tensor]:
    """Project augmented 3D points into the network-input image.

    Undo the 3D augmentation, project with ``img_meta[proj_key]``, subtract
    ``pixel_origin`` (the pixel coordinate the calibration gives to the
    first pixel: 1 for SUN RGB-D's MATLAB calibration, as mmdet3d's
    ``VoteFusion`` does with ``uv - 1``; 0 for 0-based calibrations such as
    ScanNet's), then apply the 2D augmentation (:func:`to_network_pixels`).
    Resize and flip treat pixel coordinates as mmcv / mmdet treat box
    corners; whether ``pixel_origin`` addresses pixel centres (VoteFusion)
    or corners shifts results by at most half an original pixel.

    Args:
        xyz (Tensor): (N, 3) points in the augmented point-cloud frame.
        img_meta (dict): Single-view metainfo (see :func:`split_views` for
            multi-view samples); needs ``proj_key`` and ``img_shape``.
        proj_key (str): Projection matrix key, e.g. 'depth2img' or
            'lidar2img'. Defaults to 'depth2img'.
        pixel_origin (float): Subtracted from the projected pixel
            coordinates before the 2D augmentation. Defaults to 1.0.
        coord_type (str): Point coordinate system. Defaults to 'DEPTH'.
        min_depth (float): Points with camera depth <= this are invalid.
            Defaults to 1e-3.

    Returns:
        tuple[Tensor, Tensor]: ``uv`` (N, 2) (x, y) in network-input pixels
        and ``valid`` (N,) bool: in front of the camera (depth >
        ``min_depth``) and inside the unpadded image, ``0 <= u < w`` and
        ``0 <= v < h`` with (h, w) = ``img_shape``.
    """
    xyz_orig = undo_points_augmentation(xyz, img_meta, coord_type)
    uv, depth = _project_single_view(xyz_orig, img_meta, proj_key,
                                     pixel_origin)
    valid = (depth > min_depth) & _inside_image(uv, img_meta)
    return uv, valid


def _pair(value, name: str) -> Tuple[int, int]:
    if isinstance(value, Number):
        return int(value), int(value)
    if len(value) != 2:
        raise ValueError(f'{name} must be an int or a pair, got {value!r}')
    return int(value[0]), int(value[1])


def patch_indices(uv: Tensor, valid: Tensor, patch_size: Union[int,
                                                               Sequence[int]],
                  grid_hw: Sequence[int]) -> Tuple[Tensor, Tensor]:
    """Row-major index of the ViT patch that each pixel falls in.

    ``col = floor(u / patch_w)``, ``row = floor(v / patch_h)``, index
    ``row * grid_w + col``. A pixel beyond the patch grid (in the padding the
    grid does not cover, or negative) is clamped onto the grid and marked
    invalid; invalid entries get index 0 so the indices can always be used
    to gather, and callers mask with the returned ``valid``.

    Args:
        uv (Tensor): (N, 2) network-input pixel coordinates (x, y).
        valid (Tensor): (N,) bool, validity from :func:`points_to_image`.
        patch_size (int | tuple[int, int]): Patch size, or (h, w).
        grid_hw (tuple[int, int]): Patch grid (rows, cols) of the padded
            batch.

    Returns:
        tuple[Tensor, Tensor]: ``index`` (N,) long in ``[0, rows * cols)``
        and ``valid`` (N,) bool = input ``valid`` and inside the grid.
    """
    patch_h, patch_w = _pair(patch_size, 'patch_size')
    rows, cols = _pair(grid_hw, 'grid_hw')
    if min(patch_h, patch_w, rows, cols) <= 0:
        raise ValueError(f'patch_size {patch_size!r} and grid_hw '
                         f'{grid_hw!r} must be positive')
    if uv.dim() != 2 or uv.shape[1] != 2 or valid.shape != uv.shape[:1]:
        raise ValueError(f'uv must be (N, 2) and valid (N,), got '
                         f'{tuple(uv.shape)} and {tuple(valid.shape)}')
    finite = torch.isfinite(uv).all(dim=1)
    uv = torch.where(finite[:, None], uv, torch.zeros_like(uv))
    col = torch.floor(uv[:, 0] / patch_w).long()
    row = torch.floor(uv[:, 1] / patch_h).long()
    in_grid = finite & (col >= 0) & (col < cols) & (row >= 0) & (row < rows)
    valid = valid.bool() & in_grid
    index = row.clamp(0, rows - 1) * cols + col.clamp(0, cols - 1)
    index = torch.where(valid, index, torch.zeros_like(index))
    return index, valid


def _centre_distance(uv: Tensor, img_meta: dict) -> Tensor:
    """Distance of pixels to the image centre, in units of the image size."""
    img_h, img_w = _image_hw(img_meta)
    du = (uv[:, 0] - img_w / 2) / img_w
    dv = (uv[:, 1] - img_h / 2) / img_h
    return torch.sqrt(du * du + dv * dv)


def seeds_to_patches(seed_xyz: Tensor,
                     img_metas: Sequence[dict],
                     patch_size: Union[int, Sequence[int]],
                     grid_hw: Sequence[int],
                     proj_key: str = 'depth2img',
                     pixel_origin: float = 1.0,
                     coord_type: str = 'DEPTH',
                     min_depth: float = 1e-3) -> Tuple[Tensor, Tensor, Tensor]:
    """The image view and patch each seed point projects into.

    Single-image samples use view 0. In a multi-view sample (see
    :func:`split_views`) each seed takes, among the views in which it is
    valid (in front of the camera, inside the image and on the patch grid),
    the one whose projection lies closest to that image's centre, the
    distance measured in units of the image size (``((u - w/2) / w)^2 +
    ((v - h/2) / h)^2``); ties go to the lowest view index. The most
    central view has the least lens distortion and the largest margin
    around the seed's patch. A seed valid in no view is invalid.

    Args:
        seed_xyz (Tensor): (B, S, 3) seed points (augmented frame).
        img_metas (Sequence[dict]): B sample metainfos.
        patch_size (int | tuple[int, int]): ViT patch size, or (h, w).
        grid_hw (tuple[int, int]): Patch grid (rows, cols) of the padded
            batch, e.g. ``(pad_h // patch, pad_w // patch)``.
        proj_key (str): Projection matrix key. Defaults to 'depth2img'.
        pixel_origin (float): See :func:`points_to_image`. Defaults to 1.0.
        coord_type (str): Point coordinate system. Defaults to 'DEPTH'.
        min_depth (float): Minimum camera depth. Defaults to 1e-3.

    Returns:
        tuple[Tensor, Tensor, Tensor]: ``view`` (B, S) long, ``patch``
        (B, S) long (row-major index in the grid; 0 where invalid) and
        ``valid`` (B, S) bool.
    """
    if seed_xyz.dim() != 3 or seed_xyz.shape[2] != 3:
        raise ValueError(f'seed_xyz must be (B, S, 3), got '
                         f'{tuple(seed_xyz.shape)}')
    if len(img_metas) != seed_xyz.shape[0]:
        raise ValueError(f'Got {len(img_metas)} img_metas for a batch of '
                         f'{seed_xyz.shape[0]} seed sets')
    views, patches, valids = [], [], []
    for xyz, img_meta in zip(seed_xyz, img_metas):
        xyz_orig = undo_points_augmentation(xyz, img_meta, coord_type)
        view_index, view_dist, view_valid = [], [], []
        for view_meta in split_views(img_meta, proj_key):
            uv, depth = _project_single_view(xyz_orig, view_meta, proj_key,
                                             pixel_origin)
            valid = (depth > min_depth) & _inside_image(uv, view_meta)
            index, valid = patch_indices(uv, valid, patch_size, grid_hw)
            dist = _centre_distance(uv, view_meta)
            view_index.append(index)
            view_valid.append(valid)
            view_dist.append(torch.where(valid, dist, math.inf))
        view_index = torch.stack(view_index)  # (V, S)
        view_valid = torch.stack(view_valid)
        # argmin returns the first minimum: ties -> lowest view index.
        best = torch.stack(view_dist).argmin(dim=0)  # (S,)
        valid = view_valid.any(dim=0)
        best = torch.where(valid, best, torch.zeros_like(best))
        patch = view_index.gather(0, best[None]).squeeze(0)
        views.append(best)
        patches.append(torch.where(valid, patch, torch.zeros_like(patch)))
        valids.append(valid)
    return torch.stack(views), torch.stack(patches), torch.stack(valids)


def _box_corners(boxes, coord_type: str) -> Tensor:
    """(K, 8, 3) corners of mmdet3d boxes or of (K, 7) gravity-centre
    boxes [x, y, z, dx, dy, dz, yaw] in ``coord_type`` coordinates."""
    from mmdet3d.structures import BaseInstance3DBoxes, get_box_type
    if isinstance(boxes, BaseInstance3DBoxes):
        return boxes.corners
    if not isinstance(boxes, Tensor) or boxes.dim() != 2 or \
            boxes.shape[1] != 7:
        raise ValueError('boxes must be a BaseInstance3DBoxes or a (K, 7) '
                         'tensor [x, y, z, dx, dy, dz, yaw], got '
                         f'{getattr(boxes, "shape", type(boxes))}')
    box_type, _ = get_box_type(coord_type)
    return box_type(boxes, origin=(0.5, 0.5, 0.5)).corners


def box_corners_to_image(boxes,
                         img_meta: dict,
                         proj_key: str = 'depth2img',
                         pixel_origin: float = 1.0,
                         coord_type: str = 'DEPTH',
                         min_depth: float = 1e-3) -> Tuple[Tensor, Tensor]:
    """Project the 8 corners of 3D boxes into the network-input image.

    Args:
        boxes (BaseInstance3DBoxes | Tensor): K boxes in the augmented
            frame: mmdet3d boxes (e.g. the packed ``gt_bboxes_3d``), or a
            (K, 7) tensor of gravity-centre boxes [x, y, z, dx, dy, dz, yaw]
            in ``coord_type`` coordinates.
        img_meta (dict): Single-view metainfo.
        proj_key, pixel_origin, coord_type, min_depth: As in
            :func:`points_to_image`.

    Returns:
        tuple[Tensor, Tensor]: ``uv`` (K, 8, 2) network-input pixels of the
        corners (in mmdet3d's corner order) and ``valid`` (K, 8) bool (in
        front of the camera and inside the image).
    """
    corners = _box_corners(boxes, coord_type)
    num_boxes = corners.shape[0]
    uv, valid = points_to_image(
        corners.reshape(-1, 3), img_meta, proj_key, pixel_origin, coord_type,
        min_depth)
    return uv.reshape(num_boxes, 8, 2), valid.reshape(num_boxes, 8)


def project_boxes_to_2d(boxes,
                        img_meta: dict,
                        proj_key: str = 'depth2img',
                        pixel_origin: float = 1.0,
                        coord_type: str = 'DEPTH',
                        min_depth: float = 1e-3) -> Tuple[Tensor, Tensor]:
    """2D boxes (x1, y1, x2, y2) of the projections of 3D boxes.

    The part of each 3D box in front of the plane ``depth = min_depth`` is
    projected: its vertices are the corners in front of the plane plus the
    points where segments between a front and a back corner cross the plane
    (segments between any two corners: those inside the box do not change
    the hull). A box that straddles the camera plane therefore gets the
    projection of its visible part instead of one spanning the mirrored
    points behind the camera. The enclosing box of those projections is
    clipped to the (unpadded) image ``[0, w] x [0, h]``.

    A box is kept if some part of it is in front of the camera and its
    clipped 2D box has positive width and height (i.e. it overlaps the
    image). Boxes not kept are returned as zeros.

    Args:
        boxes (BaseInstance3DBoxes | Tensor): See
            :func:`box_corners_to_image`.
        img_meta (dict): Single-view metainfo.
        proj_key, pixel_origin, coord_type, min_depth: As in
            :func:`points_to_image`.

    Returns:
        tuple[Tensor, Tensor]: ``bboxes`` (K, 4) x1y1x2y2 in network-input
        pixels and ``keep`` (K,) bool.
    """
    corners = _box_corners(boxes, coord_type)
    num_boxes = corners.shape[0]
    if num_boxes == 0:
        return corners.new_zeros(0, 4), corners.new_zeros(0, dtype=torch.bool)
    xyz = undo_points_augmentation(
        corners.reshape(-1, 3), img_meta, coord_type).reshape(num_boxes, 8, 3)
    proj_mat = _as_matrix(
        _single_view_matrix(img_meta, proj_key), xyz, proj_key)
    # Camera depth is affine in the point, so it can be interpolated along
    # a segment.
    _, depth = project_points(xyz.reshape(-1, 3), proj_mat)
    depth = depth.reshape(num_boxes, 8)
    first, second = torch.triu_indices(8, 8, offset=1, device=xyz.device)
    depth_a, depth_b = depth[:, first], depth[:, second]
    crossing = (depth_a > min_depth) != (depth_b > min_depth)
    denom = torch.where(crossing, depth_b - depth_a, torch.ones_like(depth_a))
    frac = ((min_depth - depth_a) / denom).clamp(0, 1)
    cuts = xyz[:, first] + frac[..., None] * (xyz[:, second] - xyz[:, first])
    points = torch.cat([xyz, cuts], dim=1)  # (K, 8 + 28, 3)
    # The cut points lie on the plane (depth == min_depth): they count.
    in_front = torch.cat([depth > min_depth, crossing], dim=1)
    uv, _ = project_points(points.reshape(-1, 3), proj_mat)
    uv = to_network_pixels(uv - pixel_origin, img_meta)
    uv = uv.reshape(num_boxes, -1, 2)
    big = torch.finfo(uv.dtype).max
    low = torch.where(in_front[..., None], uv, big).amin(dim=1)
    high = torch.where(in_front[..., None], uv, -big).amax(dim=1)
    img_h, img_w = _image_hw(img_meta)
    x1 = low[:, 0].clamp(0, img_w)
    y1 = low[:, 1].clamp(0, img_h)
    x2 = high[:, 0].clamp(0, img_w)
    y2 = high[:, 1].clamp(0, img_h)
    keep = in_front.any(dim=1) & (x2 > x1) & (y2 > y1)
    bboxes = torch.stack([x1, y1, x2, y2], dim=1)
    bboxes = torch.where(keep[:, None], bboxes, torch.zeros_like(bboxes))
    return bboxes, keep


# The data transforms a fusion pipeline may hold, and what each does to the
# points / image as the projection sees it. Anything else could move points
# or pixels without a record, so the projection would be wrong without an
# error: :func:`check_projection_pipeline` rejects it at start-up.
PROJECTION_TRANSFORMS = {
    # loading, filtering, sampling and packing: nothing moves
    'LoadPointsFromFile':
    'loads the points',
    'LoadImageFromFile':
    'loads the image (ori_shape, img_shape)',
    'LoadAnnotations3D':
    'loads boxes and labels',
    'LoadMultiViewPosedImages':
    'loads posed views; records scale_factor (1, the matrices are rescaled) '
    'and flip (False)',
    'CheckPointCloud':
    'checks the points',
    'GlobalAlignment':
    'axis-aligns the points (the calibration maps aligned '
    'points)',
    'PointSegClassMapping':
    'maps labels',
    'PointSample':
    'subsamples points',
    'PointShuffle':
    'reorders points',
    'PointsRangeFilter':
    'drops points',
    'ObjectRangeFilter':
    'drops boxes',
    'ObjectNameFilter':
    'drops boxes',
    'Pack3DDetInputs':
    'packs (keep the recorded keys in meta_keys)',
    'PhotoMetricDistortion3D':
    'changes colours, moves no pixel',
    'MultiScaleFlipAug3D':
    'test-time wrapper (its transforms are checked); records flip',
    # recorded 3D augmentation, undone before projecting
    'GlobalRotScaleTrans':
    'records R / S / T in transformation_3d_flow',
    'RandomFlip3D':
    'records HF / VF in transformation_3d_flow, and the '
    'image flip in flip / flip_direction',
    # recorded image augmentation, applied after projecting
    'Resize':
    'records scale_factor',
    'RandomResize':
    'records scale_factor',
    'RandomCrop3D':
    'records img_crop_offset',
}


def check_projection_pipeline(pipeline: Sequence[dict],
                              name: str = 'pipeline') -> None:
    """Raise if a transform of ``pipeline`` (config dicts, the nested
    ``transforms`` of test-time wrappers included) is not one of
    :data:`PROJECTION_TRANSFORMS`, naming it and the list.

    Args:
        pipeline (Sequence[dict]): transform configs.
        name (str): how the error names the pipeline (e.g.
            ``'train_dataloader.dataset.pipeline'``).
    """
    for index, step in enumerate(pipeline):
        kind = step.get('type') if isinstance(step, dict) else step
        kind = kind if isinstance(kind, str) else getattr(
            kind, '__name__', repr(kind))
        short = kind.rsplit('.', 1)[-1]
        if short not in PROJECTION_TRANSFORMS:
            raise ValueError(
                f'{name}[{index}] is {kind!r}, which the seed projection does '
                'not know: it could move points or pixels without recording '
                'it, and seeds would read the wrong image patches. Supported: '
                f'{sorted(PROJECTION_TRANSFORMS)}; to add one, make it record '
                'what it does in the metainfo and extend '
                'PROJECTION_TRANSFORMS.')
        if isinstance(step, dict) and step.get('transforms'):
            check_projection_pipeline(step['transforms'],
                                      f'{name}[{index}].transforms')
