"""Tests of projecting augmented 3D points into network-input image patches
(``projects/multimodal_det3d/models/fusion_layers/projection.py``), on
hand-made cameras and on the real SUN RGB-D sample 000017 loaded through
mmdet3d's pipeline."""
import math
import os.path as osp
import warnings

import numpy as np
import pytest
import torch
from mmdet3d.datasets.transforms import GlobalRotScaleTrans, RandomFlip3D
from mmdet3d.models.layers.fusion_layers.coord_transform import \
    apply_3d_transformation
from mmdet3d.structures import DepthInstance3DBoxes
from mmdet3d.structures.points import DepthPoints, LiDARPoints, get_points_type
from mmdet.structures.bbox import bbox_overlaps
from mmengine.registry import DefaultScope

# yapf: disable
from projects.multimodal_det3d.models.fusion_layers.projection import (
    box_corners_to_image, patch_indices, points_to_image, project_boxes_to_2d,
    project_points, seeds_to_patches, split_views, to_network_pixels,
    undo_points_augmentation)
# yapf: enable
from ..utils import DATA_ROOT

SUN_ROOT = osp.join(DATA_ROOT, 'sunrgbd_000017')

# Depth coordinates (x right, y forward, z up) -> camera coordinates
# (x right, y down, z forward).
DEPTH_TO_CAM = np.array([[1., 0., 0.], [0., 0., -1.], [0., 1., 0.]])
# A 64x48 (w x h) camera with the principal point at the image centre.
FOCAL, CX, CY, IMG_W, IMG_H = 32., 32., 24., 64, 48
K = np.array([[FOCAL, 0., CX], [0., FOCAL, CY], [0., 0., 1.]])


def depth_to_img(camera_x=0.):
    """4x4 projection of a camera at (camera_x, 0, 0) looking along +y."""
    extrinsic = np.eye(4)
    extrinsic[:3, :3] = DEPTH_TO_CAM
    extrinsic[:3, 3] = -DEPTH_TO_CAM @ np.array([camera_x, 0., 0.])
    intrinsic = np.eye(4)
    intrinsic[:3, :3] = K
    return intrinsic @ extrinsic


# What a pipeline that augments nothing records (the projection reads every
# record; none is assumed).
NOTHING_APPLIED = dict(
    transformation_3d_flow=[], scale_factor=(1., 1.), flip=False)


def recorded(**records):
    """An image meta recording ``records`` and nothing applied otherwise."""
    return dict(NOTHING_APPLIED, **records)


def single_meta(**extra):
    meta = recorded(depth2img=K @ DEPTH_TO_CAM, img_shape=(IMG_H, IMG_W))
    meta.update(extra)
    return meta


# ---------------------------------------------------------------- projection
def test_project_points_principal_point_and_matrix_shapes():
    cam_points = torch.tensor([[0., 0., 2.], [1., -0.5, 4.]])
    uv, depth = project_points(cam_points, K)
    assert torch.allclose(uv[0], torch.tensor([CX, CY]))
    assert torch.allclose(uv[1], torch.tensor([CX + 8., CY - 4.]))
    assert torch.allclose(depth, torch.tensor([2., 4.]))
    # A 3x4 [K | K t] matrix adds the translation t in camera coordinates.
    shift = np.array([0.5, 0., 0.])
    uv34, depth34 = project_points(cam_points,
                                   np.hstack([K, (K @ shift)[:, None]]))
    assert torch.allclose(uv34[0], torch.tensor([CX + 8., CY]))
    assert torch.allclose(depth34, depth)
    # 4x4, tensor and list inputs agree.
    mat44 = depth_to_img()
    depth_points = torch.tensor([[0., 2., 0.], [0.5, 3., -0.25]])
    uv44, d44 = project_points(depth_points, torch.from_numpy(mat44))
    uv33, d33 = project_points(depth_points, (K @ DEPTH_TO_CAM).tolist())
    assert torch.allclose(uv44, uv33) and torch.allclose(d44, d33)
    assert torch.allclose(uv44[0], torch.tensor([CX, CY]))


def test_project_points_rejects_bad_input():
    with pytest.raises(ValueError, match='3x3, 3x4 or 4x4'):
        project_points(torch.zeros(2, 3), np.eye(2))
    with pytest.raises(ValueError, match=r'\(N, 3\)'):
        project_points(torch.zeros(2, 2), K)
    # A point on the camera plane projects to finite pixels.
    uv, depth = project_points(torch.tensor([[1., 1., 0.]]), K)
    assert torch.isfinite(uv).all() and depth.item() == 0


# ------------------------------------------------------------ 3D augmentation
def augment_depth_points(xyz, flip_h, flip_v, angle, scale, trans):
    """Apply RandomFlip3D + GlobalRotScaleTrans the way mmdet3d does and
    return the augmented points and the metainfo that records it."""
    points = DepthPoints(xyz.clone(), points_dim=3)
    flow = []
    if flip_h:
        points.flip('horizontal')
        flow.append('HF')
    if flip_v:
        points.flip('vertical')
        flow.append('VF')
    rot_mat_t = points.rotate(angle)
    points.scale(scale)
    points.translate(np.array(trans))
    flow += ['R', 'S', 'T']
    meta = dict(
        transformation_3d_flow=flow,
        pcd_horizontal_flip=flip_h,
        pcd_vertical_flip=flip_v,
        pcd_rotation=rot_mat_t,
        pcd_scale_factor=scale,
        pcd_trans=np.array(trans))
    return points.tensor, meta


@pytest.mark.parametrize('flip_h,flip_v', [(False, False), (True, False),
                                           (True, True)])
def test_undo_points_augmentation_inverts_mmdet3d_augmentation(flip_h, flip_v):
    xyz = torch.rand(50, 3, generator=torch.Generator().manual_seed(0)) * 4
    augmented, meta = augment_depth_points(xyz, flip_h, flip_v, 0.4, 1.1,
                                           [0.1, -0.2, 0.05])
    assert not torch.allclose(augmented, xyz, atol=1e-2)
    restored = undo_points_augmentation(augmented, meta)
    assert torch.allclose(restored, xyz, atol=1e-5)
    reference = apply_3d_transformation(augmented, 'DEPTH', meta, reverse=True)
    assert torch.allclose(restored, reference, atol=1e-5)
    # The input is not modified; an empty flow means nothing to undo, a
    # missing one is an error (never "not augmented").
    assert torch.equal(
        undo_points_augmentation(augmented, dict(transformation_3d_flow=[])),
        augmented)
    with pytest.raises(KeyError, match='transformation_3d_flow'):
        undo_points_augmentation(augmented, {})


def run_3d_augmentation(xyz, coord_type, flips, flip_first):
    """mmdet3d's own RandomFlip3D and GlobalRotScaleTrans on ``xyz``
    (either order); returns the augmented points and the metainfo."""
    flip = RandomFlip3D(
        sync_2d=False,
        flip_ratio_bev_horizontal=float(flips[0]),
        flip_ratio_bev_vertical=float(flips[1]))
    rot_scale_trans = GlobalRotScaleTrans(
        rot_range=[0.7, 0.7],
        scale_ratio_range=[0.8, 0.8],
        translation_std=[0.3, 0.3, 0.3])
    results = dict(points=get_points_type(coord_type)(xyz.clone()))
    np.random.seed(3)
    for transform in ([flip, rot_scale_trans]
                      if flip_first else [rot_scale_trans, flip]):
        results = transform(results)
    meta = {k: v for k, v in results.items() if k != 'points'}
    return results['points'].tensor, meta


@pytest.mark.parametrize('coord_type', ['DEPTH', 'LIDAR'])
@pytest.mark.parametrize('flip_first', [True, False])
@pytest.mark.parametrize('flips', [(True, False), (False, True), (True, True)])
def test_undo_points_augmentation_agrees_with_mmdet3d_reverse(
        coord_type, flip_first, flips):
    """Flips, rotation, scale and translation recorded by mmdet3d's
    transforms, in either order: ours and mmdet3d's
    ``apply_3d_transformation(reverse=True)`` give the same points, which
    are the original ones."""
    xyz = (torch.rand(200, 3, generator=torch.Generator().manual_seed(1)) -
           0.5) * 8
    augmented, meta = run_3d_augmentation(xyz, coord_type, flips, flip_first)
    recorded_flips = ['HF'] * flips[0] + ['VF'] * flips[1]
    assert meta['transformation_3d_flow'] == (
        recorded_flips + ['R', 'S', 'T'] if flip_first else ['R', 'S', 'T'] +
        recorded_flips)
    assert isinstance(meta['pcd_rotation'], torch.Tensor)
    assert not torch.allclose(augmented, xyz, atol=0.1)
    with warnings.catch_warnings():
        # mmdet3d's torch.tensor(tensor) warns; ours passes numpy values
        warnings.simplefilter('error')
        ours = undo_points_augmentation(augmented, meta, coord_type)
    reference = apply_3d_transformation(
        augmented, coord_type, meta, reverse=True)
    assert ours.dtype == reference.dtype == torch.float32
    assert torch.allclose(ours, reference, atol=1e-6)
    assert torch.allclose(ours, xyz, atol=1e-5)
    # the recorded order matters: with the two groups of ops swapped the
    # points do not come back
    ops = meta['transformation_3d_flow']
    first = len(recorded_flips) if flip_first else 3
    swapped = dict(meta, transformation_3d_flow=ops[first:] + ops[:first])
    wrong = undo_points_augmentation(augmented, swapped, coord_type)
    assert (wrong - xyz).abs().max() > 0.1


def test_undo_points_augmentation_other_dtypes():
    """mmdet3d's function builds the rotation in the input's dtype but its
    points structure casts to float32, so it fails on float64 input; ours
    computes in float32 and keeps the input's dtype (half -> float32)."""
    xyz = torch.rand(30, 3, generator=torch.Generator().manual_seed(2)) * 4
    augmented, meta = run_3d_augmentation(xyz, 'DEPTH', (True, True), True)
    expected = undo_points_augmentation(augmented, meta)
    with pytest.raises(RuntimeError):
        apply_3d_transformation(
            augmented.double(), 'DEPTH', meta, reverse=True)
    restored = undo_points_augmentation(augmented.double(), meta)
    assert restored.dtype == torch.float64
    assert torch.allclose(restored, expected.double())
    restored = undo_points_augmentation(augmented.half(), meta)
    assert restored.dtype == torch.float32
    assert torch.allclose(restored, xyz, atol=0.02)


def test_undo_points_augmentation_lidar_flip_axis():
    xyz = torch.tensor([[1., 2., 3.]])
    points = LiDARPoints(xyz.clone(), points_dim=3)
    points.flip('horizontal')  # LiDAR: horizontal flip negates y
    meta = dict(transformation_3d_flow=['HF'], pcd_horizontal_flip=True)
    assert torch.equal(points.tensor, torch.tensor([[1., -2., 3.]]))
    restored = undo_points_augmentation(points.tensor, meta, 'LIDAR')
    assert torch.equal(restored, xyz)
    # With the DEPTH convention the same meta negates x instead.
    assert torch.equal(
        undo_points_augmentation(points.tensor, meta, 'DEPTH'),
        torch.tensor([[-1., -2., 3.]]))


def test_undo_points_augmentation_errors():
    xyz = torch.zeros(3, 3)
    with pytest.raises(KeyError, match='pcd_rotation'):
        undo_points_augmentation(xyz, dict(transformation_3d_flow=['R']))
    with pytest.raises(ValueError, match='more than once'):
        undo_points_augmentation(
            xyz,
            dict(
                transformation_3d_flow=['R', 'S', 'T', 'R', 'S', 'T'],
                pcd_rotation=np.eye(3),
                pcd_scale_factor=1.,
                pcd_trans=np.zeros(3)))
    with pytest.raises(ValueError, match='Unknown op'):
        undo_points_augmentation(xyz, dict(transformation_3d_flow=['X']))
    with pytest.raises(ValueError, match='coord_type'):
        undo_points_augmentation(xyz, {}, coord_type='BEV')
    # mmdet3d would silently use the identity / a zero scale would divide
    with pytest.raises(KeyError, match='pcd_trans'):
        undo_points_augmentation(
            xyz, dict(transformation_3d_flow=['S', 'T'], pcd_scale_factor=1.1))
    with pytest.raises(ValueError, match="'pcd_scale_factor'.*non-zero"):
        undo_points_augmentation(
            xyz, dict(transformation_3d_flow=['S'], pcd_scale_factor=0.))
    with pytest.raises(ValueError, match="'pcd_trans'.*3 values"):
        undo_points_augmentation(
            xyz, dict(transformation_3d_flow=['T'], pcd_trans=[1., 2.]))
    with pytest.raises(ValueError, match="'pcd_rotation'.*3x3"):
        undo_points_augmentation(
            xyz, dict(transformation_3d_flow=['R'], pcd_rotation=np.eye(2)))
    with pytest.raises(TypeError, match="'pcd_trans'.*numeric"):
        undo_points_augmentation(
            xyz, dict(transformation_3d_flow=['T'], pcd_trans='0 0 0'))


# ------------------------------------------------------------ 2D augmentation
def test_to_network_pixels_resize_crop_flip():
    uv = torch.tensor([[10., 20.], [0., 0.], [63., 47.]])
    assert torch.equal(to_network_pixels(uv, recorded()), uv)
    half = to_network_pixels(uv, recorded(scale_factor=(0.5, 0.5)))
    assert torch.allclose(half, uv * 0.5)
    anisotropic = to_network_pixels(uv,
                                    recorded(scale_factor=(2., 0.5, 2., .5)))
    assert torch.allclose(anisotropic, uv * torch.tensor([2., 0.5]))
    assert torch.allclose(
        to_network_pixels(uv, recorded(scale_factor=0.25)), uv * 0.25)
    cropped = to_network_pixels(uv, recorded(img_crop_offset=(4, 6)))
    assert torch.allclose(cropped, uv - torch.tensor([4., 6.]))
    # A missing record is an error that names it, never "not applied".
    for key in ('scale_factor', 'flip'):
        meta = recorded()
        del meta[key]
        with pytest.raises(KeyError, match=key):
            to_network_pixels(uv, meta)
    # Flip mirrors in the image AFTER the resize: w = 32 here.
    meta = recorded(scale_factor=(0.5, 0.5), img_shape=(24, 32), flip=True)
    flipped = to_network_pixels(uv, meta)
    assert torch.allclose(flipped[:, 0], 32 - uv[:, 0] * 0.5)
    assert torch.allclose(flipped[:, 1], uv[:, 1] * 0.5)
    vertical = to_network_pixels(
        uv,
        recorded(
            scale_factor=(0.5, 0.5),
            img_shape=(24, 32),
            flip=True,
            flip_direction='vertical'))
    assert torch.allclose(vertical[:, 1], 24 - uv[:, 1] * 0.5)
    assert torch.allclose(vertical[:, 0], uv[:, 0] * 0.5)
    # flip=False ignores the direction; a flip needs the image shape.
    assert torch.equal(
        to_network_pixels(uv, recorded(flip_direction='vertical')), uv)
    with pytest.raises(KeyError, match='img_shape'):
        to_network_pixels(uv, recorded(flip=True))


def test_to_network_pixels_matches_mmdet_box_flip():
    """Mirroring a point with ``w - u`` moves it exactly as mmdet's
    ``HorizontalBoxes.flip_`` moves a box corner."""
    from mmdet.structures.bbox import HorizontalBoxes
    boxes = torch.tensor([[3., 5., 20., 9.]])
    flipped = HorizontalBoxes(boxes.clone())
    flipped.flip_((24, 32), direction='horizontal')
    corners = boxes.reshape(2, 2)
    ours = to_network_pixels(corners, recorded(img_shape=(24, 32), flip=True))
    low = ours.amin(dim=0)
    high = ours.amax(dim=0)
    assert torch.allclose(torch.cat([low, high]), flipped.tensor[0])


# ------------------------------------------------------------ points_to_image
def test_points_to_image_principal_point_validity_and_resize():
    ahead = torch.tensor([[0., 2., 0.]])
    uv, valid = points_to_image(ahead, single_meta(), pixel_origin=1.0)
    # MATLAB calibration: the principal point minus the 1-based origin.
    assert torch.allclose(uv[0], torch.tensor([CX - 1, CY - 1]))
    assert valid.all()
    uv0, _ = points_to_image(ahead, single_meta(), pixel_origin=0.)
    assert torch.allclose(uv0[0], torch.tensor([CX, CY]))
    resized = single_meta(scale_factor=(0.5, 0.5), img_shape=(24, 32))
    uv_half, valid_half = points_to_image(ahead, resized, pixel_origin=0.)
    assert torch.allclose(uv_half, uv0 * 0.5) and valid_half.all()

    points = torch.tensor([
        [0., -2., 0.],  # behind the camera
        [0., 0., 0.],  # on the camera centre
        [10., 2., 0.],  # far right: u = 32 + 160
        [0., 2., 5.],  # far up: v < 0
        [-2., 2., 0.],  # u = 0 exactly: inside
        [2., 2., 0.],  # u = 64 = w: outside
    ])
    uv, valid = points_to_image(points, single_meta(), pixel_origin=0.)
    assert valid.tolist() == [False, False, False, False, True, False]
    assert torch.allclose(uv[4], torch.tensor([0., CY]))


def test_points_to_image_undoes_3d_augmentation_and_rejects_views():
    xyz = torch.tensor([[0.3, 2.5, -0.2], [-0.5, 3.0, 0.4]])
    augmented, aug_meta = augment_depth_points(xyz, True, False, 0.5, 0.9,
                                               [0.05, 0.1, 0.])
    meta = single_meta(**aug_meta)
    uv_aug, valid_aug = points_to_image(augmented, meta)
    uv_raw, valid_raw = points_to_image(xyz, single_meta())
    assert torch.allclose(uv_aug, uv_raw, atol=1e-4)
    assert valid_aug.all() and valid_raw.all()
    multi = recorded(
        lidar2img=np.stack([depth_to_img(), depth_to_img(1.)]),
        img_shape=(IMG_H, IMG_W))
    with pytest.raises(ValueError, match='several views'):
        points_to_image(xyz, multi, proj_key='lidar2img')
    with pytest.raises(KeyError, match='lidar2img'):
        points_to_image(xyz, single_meta(), proj_key='lidar2img')


# -------------------------------------------------------------- patch_indices
def test_patch_indices_arithmetic_and_padding():
    uv = torch.tensor([
        [0., 0.],  # patch (0, 0)
        [15.9, 15.9],  # still (0, 0)
        [16., 0.],  # (0, 1)
        [40., 17.],  # (1, 2)
        [47.9, 31.9],  # (1, 2): last patch of a 2 x 3 grid
        [48., 10.],  # column 3 is padding beyond the grid
        [10., 32.],  # row 2 is padding beyond the grid
        [-0.5, 3.],  # left of the image
        [20., 20.],  # valid pixel, but marked invalid by the caller
    ])
    valid = torch.tensor([True] * 8 + [False])
    index, valid_out = patch_indices(uv, valid, 16, (2, 3))
    assert index.dtype == torch.long
    assert index.tolist() == [0, 0, 1, 5, 5, 0, 0, 0, 0]
    assert valid_out.tolist() == [True] * 5 + [False] * 4
    # Rectangular patches (h, w) = (8, 16) on a 4 x 3 grid.
    index, valid_out = patch_indices(uv[:5], valid[:5], (8, 16), (4, 3))
    assert index.tolist() == [0, 3, 1, 8, 11]
    assert valid_out.all()
    with pytest.raises(ValueError, match='positive'):
        patch_indices(uv, valid, 0, (2, 3))


# ----------------------------------------------------------- seeds_to_patches
def test_seeds_to_patches_single_view_batch():
    seeds = torch.tensor([[[0., 2., 0.], [-0.9, 2., 0.6], [0., -2., 0.]],
                          [[0.5, 2., 0.], [0., 2., 0.], [3., 1., 0.]]])
    metas = [
        single_meta(),
        single_meta(
            scale_factor=(0.5, 0.5),
            img_shape=(24, 32),
            flip=True,
            flip_direction='horizontal')
    ]
    view, patch, valid = seeds_to_patches(
        seeds, metas, 8, (6, 8), pixel_origin=0.)
    assert view.shape == patch.shape == valid.shape == (2, 3)
    assert (view == 0).all()
    for b in range(2):
        uv, ok = points_to_image(seeds[b], metas[b], pixel_origin=0.)
        index, ok = patch_indices(uv, ok, 8, (6, 8))
        assert torch.equal(patch[b], index) and torch.equal(valid[b], ok)
    # Half-precision seeds are projected in float32.
    half = seeds_to_patches(seeds.half(), metas, 8, (6, 8), pixel_origin=0.)
    assert torch.equal(half[1], patch) and torch.equal(half[2], valid)
    # (0, 2, 0) -> pixel (32, 24) -> patch row 3, col 4 of an 8-wide grid.
    assert patch[0, 0].item() == 3 * 8 + 4
    # (-0.9, 2, 0.6) -> pixel (17.6, 14.4) -> row 1, col 2.
    assert patch[0, 1].item() == 1 * 8 + 2
    assert valid.tolist() == [[True, True, False], [True, True, False]]
    # Second sample: half size and flipped. (0.5, 2, 0) -> (40, 24) ->
    # (20, 12) -> flipped u = 32 - 20 = 12 -> row 1, col 1.
    assert patch[1, 0].item() == 1 * 8 + 1


def multi_view_meta(per_view_shapes):
    """Two cameras looking along +y: view 0 at x = 0, view 1 at x = 1.

    View 1 is resized by 2 (its own ``scale_factor`` / ``img_shape``) when
    ``per_view_shapes``; otherwise both share one image shape."""
    meta = recorded(lidar2img=[depth_to_img(0.), depth_to_img(1.)])
    if per_view_shapes:
        meta.update(
            img_shape=[(IMG_H, IMG_W), (2 * IMG_H, 2 * IMG_W)],
            scale_factor=[(1., 1.), (2., 2.)])
    else:
        meta.update(img_shape=(IMG_H, IMG_W))
    return meta


@pytest.mark.parametrize('per_view_shapes', [False, True])
def test_seeds_to_patches_multi_view_picks_most_central_view(per_view_shapes):
    seeds = torch.tensor([[
        [1., 2., 0.],  # u: view 0 48, view 1 32 (centre) -> view 1
        [0., 2., 0.],  # view 0 centre, view 1 u = 16 -> view 0
        [-1.5, 2., 0.],  # only in view 0 (view 1 u = -8)
        [0.5, 2., 0.],  # u 40 / 24: equally central -> tie -> view 0
        [0., -2., 0.],  # behind both cameras
        [2.5, 2., 0.],  # only in view 1 (view 0 u = 72 > 64)
    ]])
    meta = multi_view_meta(per_view_shapes)
    view, patch, valid = seeds_to_patches(
        seeds, [meta], 8, (12, 16), proj_key='lidar2img', pixel_origin=0.)
    assert view[0].tolist() == [1, 0, 0, 0, 0, 1]
    assert valid[0].tolist() == [True, True, True, True, False, True]
    scale = 2 if per_view_shapes else 1
    # Seed 0 at the centre of view 1: pixel (32, 24) * scale.
    assert patch[0, 0].item() == (24 * scale // 8) * 16 + 32 * scale // 8
    # Seed 5 in view 1: u = 32 + 32 * 1.5 / 2 = 56, v = 24.
    assert patch[0, 5].item() == (24 * scale // 8) * 16 + 56 * scale // 8
    # Seed 1 at the centre of view 0, never resized.
    assert patch[0, 1].item() == 3 * 16 + 4
    assert patch[0, 4].item() == 0
    # A (V, 4, 4) array gives the same answer as a list of matrices.
    stacked = dict(meta, lidar2img=np.stack(meta['lidar2img']))
    view2, patch2, valid2 = seeds_to_patches(
        seeds, [stacked], 8, (12, 16), proj_key='lidar2img', pixel_origin=0.)
    assert torch.equal(view2, view) and torch.equal(patch2, patch)
    assert torch.equal(valid2, valid)


def test_split_views_per_view_and_shared_keys():
    meta = dict(
        lidar2img=np.stack([depth_to_img(0.),
                            depth_to_img(1.)]),
        img_shape=[(48, 64), (96, 128)],
        scale_factor=(1., 1.),
        flip=[False, True],
        pcd_scale_factor=1.2)
    views = split_views(meta, 'lidar2img')
    assert len(views) == 2
    assert views[1]['img_shape'] == (96, 128)
    assert views[0]['scale_factor'] == (1., 1.) == views[1]['scale_factor']
    assert views[0]['flip'] is False and views[1]['flip'] is True
    assert views[1]['pcd_scale_factor'] == 1.2
    assert np.allclose(views[1]['lidar2img'], depth_to_img(1.))
    single = single_meta()
    assert split_views(single) == [single]
    with pytest.raises(ValueError, match='img_shape'):
        split_views(dict(meta, img_shape=[(48, 64)] * 3), 'lidar2img')


# ---------------------------------------------------------------- 3D boxes
def test_box_corners_to_image_tensor_and_boxes_agree():
    boxes = torch.tensor([[0., 3., 0., 1., 0.5, 0.8, 0.]])
    uv, valid = box_corners_to_image(boxes, single_meta(), pixel_origin=0.)
    assert uv.shape == (1, 8, 2) and valid.all()
    # An axis-aligned box centred on the optical axis projects symmetrically
    # around the principal point.
    assert torch.allclose(uv[0, :, 0].mean(), torch.tensor(CX), atol=1e-4)
    assert torch.allclose(uv[0, :, 1].mean(), torch.tensor(CY), atol=1e-4)
    structured = DepthInstance3DBoxes(boxes, origin=(0.5, 0.5, 0.5))
    uv2, valid2 = box_corners_to_image(
        structured, single_meta(), pixel_origin=0.)
    assert torch.allclose(uv, uv2) and torch.equal(valid, valid2)
    with pytest.raises(ValueError, match='K, 7'):
        box_corners_to_image(torch.zeros(2, 6), single_meta())


def brute_force_box_2d(box, meta, min_depth, steps=41):
    """Enclosing 2D box of many points sampled in the 3D box in front of
    the camera, clipped to the image (an independent estimate)."""
    grid = torch.linspace(-0.5, 0.5, steps)
    offsets = torch.stack(torch.meshgrid(grid, grid, grid, indexing='ij'),
                          -1).reshape(-1, 3)
    x, y, z, dx, dy, dz, yaw = box.tolist()
    local = offsets * torch.tensor([dx, dy, dz])
    cos, sin = math.cos(yaw), math.sin(yaw)
    world = torch.stack([
        cos * local[:, 0] - sin * local[:, 1] + x,
        sin * local[:, 0] + cos * local[:, 1] + y, local[:, 2] + z
    ], -1)
    uv, depth = project_points(world, meta['depth2img'])
    uv = uv[depth > min_depth]
    img_h, img_w = meta['img_shape']
    low, high = uv.amin(0), uv.amax(0)
    return torch.stack([
        low[0].clamp(0, img_w), low[1].clamp(0, img_h),
        high[0].clamp(0, img_w), high[1].clamp(0, img_h)
    ])


def test_project_boxes_to_2d_visible_straddling_behind_outside():
    meta = single_meta()
    boxes = torch.tensor([
        [0., 3., 0., 1., 0.5, 0.8, 0.3],  # in front, inside the image
        [0.2, 0.2, 0.1, 1., 2., 0.6, 0.2],  # straddles the camera plane
        [0., -3., 0., 1., 1., 1., 0.],  # behind the camera
        [-20., 3., 0., 1., 1., 1., 0.],  # in front, far left of the image
    ])
    bboxes, keep = project_boxes_to_2d(
        boxes, meta, pixel_origin=0., min_depth=0.05)
    assert keep.tolist() == [True, True, False, False]
    assert (bboxes[2:] == 0).all()
    # Fully visible: the corners' enclosing box.
    uv, valid = box_corners_to_image(boxes[:1], meta, pixel_origin=0.)
    assert valid.all()
    corners_box = torch.cat([uv[0].amin(0), uv[0].amax(0)])
    assert torch.allclose(bboxes[0], corners_box, atol=1e-4)
    # Straddling: the exact answer contains every sampled visible point and
    # sampling gets close to it.
    for k in (0, 1):
        sampled = brute_force_box_2d(boxes[k], meta, 0.05)
        assert (bboxes[k, :2] <= sampled[:2] + 1e-3).all()
        assert (bboxes[k, 2:] >= sampled[2:] - 1e-3).all()
        assert torch.allclose(bboxes[k], sampled, atol=1.5)
    img_h, img_w = meta['img_shape']
    assert (bboxes[:, 0::2] <= img_w).all() and (bboxes[:, 1::2]
                                                 <= img_h).all()
    empty, empty_keep = project_boxes_to_2d(torch.zeros(0, 7), meta)
    assert empty.shape == (0, 4) and empty_keep.shape == (0, )


# ------------------------------------------------- SUN RGB-D fixture (000017)
# 3D and 2D boxes are independent annotations: a projected corner may lie
# outside the annotated 2D box by this fraction of the box's width / height.
CORNER_TOLERANCE = 0.05


def sun_pipeline(point_flip=None,
                 image_flip=False,
                 rot_range=None,
                 scale_range=(0.85, 1.15)):
    """ImVoteNet-like SUN RGB-D training pipeline (mmdet3d scope names).

    ``point_flip``: flip ratio of ``RandomFlip3D(sync_2d=False)`` (which
    also flips the image with that probability), None for no
    ``RandomFlip3D``. ``image_flip``: add mmdet's ``RandomFlip(prob=1.0)``;
    do not combine it with ``RandomFlip3D``, which re-applies a recorded
    ``flip`` to the image (flipping it back)."""
    pipeline = [
        dict(
            type='LoadPointsFromFile',
            coord_type='DEPTH',
            shift_height=False,
            load_dim=6,
            use_dim=[0, 1, 2]),
        dict(type='LoadImageFromFile'),
        dict(
            type='LoadAnnotations3D',
            with_bbox=True,
            with_label=True,
            with_bbox_3d=True,
            with_label_3d=True),
        dict(type='mmdet.Resize', scale=(512, 384), keep_ratio=True),
    ]
    if image_flip:
        pipeline.append(dict(type='mmdet.RandomFlip', prob=1.0))
    if point_flip is not None:
        pipeline.append(
            dict(
                type='RandomFlip3D',
                sync_2d=False,
                flip_ratio_bev_horizontal=point_flip))
    pipeline += [
        dict(
            type='GlobalRotScaleTrans',
            rot_range=list(rot_range or (-0.523599, 0.523599)),
            scale_ratio_range=list(scale_range),
            translation_std=[0.1, 0.1, 0.1]),
        dict(
            type='Pack3DDetInputs',
            keys=[
                'img', 'points', 'gt_bboxes_3d', 'gt_labels_3d', 'gt_bboxes',
                'gt_bboxes_labels'
            ])
    ]
    return pipeline


_SUN_SAMPLES = {}


def load_sun_sample(seed, **pipeline_args):
    """The packed sample for a numpy seed (cached: tests only read it)."""
    key = (seed, tuple(sorted(pipeline_args.items())))
    if key not in _SUN_SAMPLES:
        _SUN_SAMPLES[key] = _load_sun_sample(seed, **pipeline_args)
    return _SUN_SAMPLES[key]


def _load_sun_sample(seed, **pipeline_args):
    from mmdet3d.registry import DATASETS
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        dataset = DATASETS.build(
            dict(
                type='SUNRGBDDataset',
                data_root=SUN_ROOT,
                ann_file='sunrgbd_000017_infos.pkl',
                data_prefix=dict(pts='', img=''),
                pipeline=sun_pipeline(**pipeline_args)))
        np.random.seed(seed)
        return dataset[0]


def corner_excess(uv, valid, box_2d):
    """Largest distance of the valid corners outside ``box_2d`` as a
    fraction of the box's width (x) and height (y); inf without valid
    corners."""
    uv = uv[valid]
    if len(uv) == 0:
        return math.inf
    width = float(box_2d[2] - box_2d[0])
    height = float(box_2d[3] - box_2d[1])
    out_x = torch.maximum(box_2d[0] - uv[:, 0], uv[:, 0] - box_2d[2])
    out_y = torch.maximum(box_2d[1] - uv[:, 1], uv[:, 1] - box_2d[3])
    return max(out_x.max().item() / width, out_y.max().item() / height)


def check_boxes_project_onto_2d_boxes(sample):
    meta = sample['data_samples'].metainfo
    boxes_3d = sample['data_samples'].gt_instances_3d.bboxes_3d
    boxes_2d = sample['data_samples'].gt_instances.bboxes
    assert len(boxes_3d) == len(boxes_2d) == 2
    uv, valid = box_corners_to_image(boxes_3d, meta)
    projected, keep = project_boxes_to_2d(boxes_3d, meta)
    assert keep.all()
    ious = bbox_overlaps(projected, boxes_2d, is_aligned=True)
    for k in range(len(boxes_2d)):
        assert valid[k].sum() >= 4, f'box {k}: {valid[k].sum()} corners'
        excess = corner_excess(uv[k], valid[k], boxes_2d[k])
        assert excess <= CORNER_TOLERANCE, (
            f'box {k}: a corner is {excess:.3f} of the 2D box outside it; '
            f'meta {meta}')
        assert ious[k] > 0.5, f'box {k}: IoU {ious[k]:.3f}'
    return meta


@pytest.mark.parametrize('seed', [0, 1, 2, 5, 6])
def test_sun_rgbd_boxes_with_random_flips_rotations_scales(seed):
    sample = load_sun_sample(seed, point_flip=0.5)
    meta = check_boxes_project_onto_2d_boxes(sample)
    assert meta['transformation_3d_flow'][-3:] == ['R', 'S', 'T']
    # Undoing the augmentation of the packed points gives the file's points.
    raw = np.fromfile(
        osp.join(SUN_ROOT, '000017.bin'), dtype=np.float32).reshape(-1, 6)
    restored = undo_points_augmentation(sample['inputs']['points'], meta)
    assert torch.allclose(restored, torch.from_numpy(raw[:, :3]), atol=1e-4)


def test_sun_rgbd_seeds_cover_all_flip_combinations():
    """The seeds above draw every (image flip, point flip) pair, so both
    flips and their mix are exercised."""
    combos = set()
    for seed in (0, 1, 2, 5, 6):
        meta = load_sun_sample(seed, point_flip=0.5)['data_samples'].metainfo
        combos.add((meta['flip'], meta['pcd_horizontal_flip']))
    assert combos == {(False, False), (True, False), (True, True),
                      (False, True)}


@pytest.mark.parametrize('pipeline_args', [
    dict(point_flip=None, image_flip=True),
    dict(point_flip=1.0),
    dict(
        point_flip=0.0,
        rot_range=(0.523599, 0.523599),
        scale_range=(1.15, 1.15)),
])
def test_sun_rgbd_boxes_with_image_flip_and_fixed_augmentations(pipeline_args):
    sample = load_sun_sample(3, **pipeline_args)
    meta = check_boxes_project_onto_2d_boxes(sample)
    if pipeline_args.get('image_flip') or pipeline_args['point_flip'] == 1.:
        assert meta['flip'] is True
    # The resize is recorded and applied (730x530 -> 512x372).
    assert meta['img_shape'] == (372, 512)
    assert np.allclose(meta['scale_factor'], (512 / 730, 372 / 530))


def test_sun_rgbd_projection_fails_without_undoing_augmentation():
    """A 30 degree rotation left in place moves the corners far off the
    annotated 2D boxes: the checks above can fail."""
    sample = load_sun_sample(3, point_flip=0.0, rot_range=(0.523599, 0.523599))
    meta = sample['data_samples'].metainfo
    boxes_3d = sample['data_samples'].gt_instances_3d.bboxes_3d
    boxes_2d = sample['data_samples'].gt_instances.bboxes
    not_undone = dict(meta, transformation_3d_flow=[])
    uv, valid = box_corners_to_image(boxes_3d, not_undone)
    projected, keep = project_boxes_to_2d(boxes_3d, not_undone)
    ious = bbox_overlaps(projected, boxes_2d, is_aligned=True)
    for k in range(len(boxes_2d)):
        failed_corners = (
            valid[k].sum() < 4 or corner_excess(uv[k], valid[k], boxes_2d[k])
            > 4 * CORNER_TOLERANCE)
        assert failed_corners and (not keep[k] or ious[k] < 0.5), (
            f'box {k} projects onto its 2D box without undoing the '
            f'rotation: IoU {ious[k]:.3f}')
