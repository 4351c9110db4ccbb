"""Tests of the pure-torch mmcv point ops and their dispatchers.

Every op is compared with a brute-force definition written here with Python
loops (small sizes, edge cases); the dispatch tests check that mmcv's and
mmdet3d's references run on CPU; an end-to-end test trains and predicts a
small GroupFree3DNet on CPU. With CUDA, every fallback is compared with
mmcv's kernel through the helpers of
``tools/analysis_tools/check_point_ops_gpu.py``.
"""
import importlib
import math
import sys
import types

import numpy as np
import pytest
import torch

from projects.common.cpu_point_ops import (DISPATCHERS, ORIGINALS, dispatch,
                                           sparse_conv, torch_ops)
from projects.common.cpu_point_ops.dispatch import OP_MODULES

check = importlib.import_module('tools.analysis_tools.check_point_ops_gpu')

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason='compares with mmcv CUDA kernels: needs a GPU')


# ---------------------------------------------------------------- references
def sq_dist32(a, b):
    """Kernel-order squared distance in float32 numpy scalars."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    d = (b[0] - a[0]) * (b[0] - a[0]) + (b[1] - a[1]) * (b[1] - a[1])
    return np.float32(d + (b[2] - a[2]) * (b[2] - a[2]))


def ref_fps_from_dist(dist_row, num_points, num_total):
    """FPS by loops; ``dist_row(i)`` lists the distances from point i."""
    picked = [0]
    min_dist = [np.float32(1e10)] * num_total
    for _ in range(1, num_points):
        row = dist_row(picked[-1])
        best, best_idx = -1.0, 0
        for k in range(num_total):
            min_dist[k] = min(min_dist[k], row[k])
            if min_dist[k] > best:  # strict: the first of tied points wins
                best, best_idx = min_dist[k], k
        picked.append(best_idx)
    return picked


def ref_fps(xyz, num_points):
    return ref_fps_from_dist(lambda i: [sq_dist32(xyz[i], p) for p in xyz],
                             num_points, len(xyz))


def ref_ball_query(min_radius, max_radius, sample_num, points, centre):
    min_r2 = np.float32(min_radius) * np.float32(min_radius)
    max_r2 = np.float32(max_radius) * np.float32(max_radius)
    idx = [0] * sample_num
    count = 0
    for k, point in enumerate(points):
        d2 = sq_dist32(centre, point)
        if d2 == 0 or (min_r2 <= d2 < max_r2):
            if count == 0:
                idx = [k] * sample_num
            idx[count] = k
            count += 1
            if count >= sample_num:
                break
    return idx


def ref_stacked_ball_query(radius, sample_num, points, centre):
    r2 = np.float32(radius) * np.float32(radius)
    hits = [k for k, p in enumerate(points) if sq_dist32(centre, p) < r2]
    if not hits:
        return [-1] + [0] * (sample_num - 1)
    hits = hits[:sample_num]
    return hits + [hits[0]] * (sample_num - len(hits))


def ref_nearest(query, points, k, limit):
    """k nearest by (distance, index) among distances < limit, 0-padded."""
    dists = [(sq_dist32(query, p), i) for i, p in enumerate(points)]
    ranked = sorted(d for d in dists if d[0] < limit)[:k]
    return ([i for _, i in ranked] + [0] * (k - len(ranked)),
            [float(d) for d, _ in ranked] + [math.inf] * (k - len(ranked)))


def ref_in_box(point, box):
    x, y, z = (float(v) for v in point)
    cx, cy, cz, dx, dy, dz, rz = (float(v) for v in box)
    cz += dz / 2
    if abs(z - cz) > dz / 2:
        return 0
    sx, sy = x - cx, y - cy
    local_x = sx * math.cos(-rz) - sy * math.sin(-rz)
    local_y = sx * math.sin(-rz) + sy * math.cos(-rz)
    return int(-dx / 2 < local_x < dx / 2 and -dy / 2 < local_y < dy / 2)


def grid_points(seed=0):
    """27 integer grid points (many equal distances) in a fixed shuffle,
    plus 3 duplicates."""
    grid = torch.stack(
        torch.meshgrid(*[torch.arange(3.)] * 3, indexing='ij'),
        -1).view(-1, 3)
    grid = grid[torch.randperm(
        27, generator=torch.Generator().manual_seed(seed))]
    return torch.cat([grid, grid[[4, 11, 4]]])


# ----------------------------------------------------------------- sampling
@pytest.mark.parametrize('kind', ['random', 'grid_ties'])
def test_furthest_point_sample_matches_loops(kind):
    if kind == 'random':
        xyz = torch.rand(2, 40, 3, generator=torch.Generator().manual_seed(0))
    else:
        xyz = torch.stack([grid_points(0), grid_points(1)])
    num = 12
    out = torch_ops.furthest_point_sample(xyz, num)
    assert out.dtype == torch.int32 and out.shape == (2, num)
    for b in range(2):
        assert out[b].tolist() == ref_fps(xyz[b].numpy(), num)


def test_furthest_point_sample_more_samples_than_points():
    xyz = torch.stack([grid_points(0)[:5]])
    out = torch_ops.furthest_point_sample(xyz, 8)
    assert out[0].tolist() == ref_fps(xyz[0].numpy(), 8)
    # all points taken: min distances are 0, argmax falls back to index 0
    assert out[0, 5:].tolist() == [0, 0, 0]
    assert torch_ops.furthest_point_sample(xyz, 1).tolist() == [[0]]
    assert torch_ops.furthest_point_sample(xyz, 0).shape == (1, 0)


def test_furthest_point_sample_with_dist_matches_loops():
    gen = torch.Generator().manual_seed(3)
    # integer distances: many ties
    dist = torch.randint(0, 5, (2, 20, 20), generator=gen).float()
    dist = dist + dist.transpose(1, 2)
    out = torch_ops.furthest_point_sample_with_dist(dist, 9)
    assert out.dtype == torch.int32
    for b in range(2):
        rows = dist[b].numpy()
        assert out[b].tolist() == ref_fps_from_dist(lambda i: rows[i], 9, 20)
    # every value <= -1: the kernel's search (best = -1) keeps index 0
    negative = torch.full((1, 6, 6), -2.0)
    assert torch_ops.furthest_point_sample_with_dist(negative,
                                                     4).tolist() == [[0] * 4]


def test_fps_with_squared_distances_equals_dfps():
    xyz = torch.rand(2, 64, 3, generator=torch.Generator().manual_seed(4))
    diff = xyz[:, :, None] - xyz[:, None]
    dist = diff[..., 0] * diff[..., 0] + diff[..., 1] * diff[..., 1]
    dist = dist + diff[..., 2] * diff[..., 2]
    assert torch.equal(
        torch_ops.furthest_point_sample(xyz, 16),
        torch_ops.furthest_point_sample_with_dist(dist, 16))


# ----------------------------------------------------------- gather / group
def test_gather_points_matches_indexing_and_gradcheck():
    gen = torch.Generator().manual_seed(5)
    features = torch.randn(2, 4, 10, generator=gen)
    idx = torch.tensor([[0, 9, 9, 3], [5, 5, 1, 0]], dtype=torch.int32)
    out = torch_ops.gather_points(features, idx)
    expected = np.stack(
        [features[b].numpy()[:, idx[b].numpy()] for b in range(2)])
    np.testing.assert_array_equal(out.numpy(), expected)
    feats64 = features.double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda f: torch_ops.gather_points(f, idx),
                                    (feats64, ))


def test_grouping_operation_matches_indexing_and_gradcheck():
    gen = torch.Generator().manual_seed(6)
    features = torch.randn(2, 3, 7, generator=gen)
    idx = torch.randint(0, 7, (2, 4, 5), generator=gen).int()
    out = torch_ops.grouping_operation(features, idx)
    assert out.shape == (2, 3, 4, 5)
    for b, c, m, k in np.ndindex(2, 3, 4, 5):
        assert out[b, c, m, k] == features[b, c, idx[b, m, k]]
    feats64 = features.double().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda f: torch_ops.grouping_operation(f, idx), (feats64, ))


def test_grouping_operation_stacked_mode():
    gen = torch.Generator().manual_seed(7)
    features = torch.randn(9, 2, generator=gen)  # 4 + 5 points, C=2
    feat_cnt = torch.tensor([4, 5], dtype=torch.int32)
    idx = torch.tensor([[0, 3, 3], [1, 1, 2], [4, 0, 2]], dtype=torch.int32)
    idx_cnt = torch.tensor([2, 1], dtype=torch.int32)  # rows of sample 0, 1
    out = torch_ops.grouping_operation(features, idx, feat_cnt, idx_cnt)
    assert out.shape == (3, 2, 3)
    starts = [0, 0, 4]
    for m, c, k in np.ndindex(3, 2, 3):
        assert out[m, c, k] == features[starts[m] + idx[m, k], c]
    feats64 = features.double().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda f: torch_ops.grouping_operation(f, idx, feat_cnt, idx_cnt),
        (feats64, ))
    with pytest.raises(ValueError, match='empty balls'):
        torch_ops.grouping_operation(features, idx - 1, feat_cnt, idx_cnt)
    with pytest.raises(ValueError, match='both'):
        torch_ops.grouping_operation(features, idx, feat_cnt)


# --------------------------------------------------------------- ball query
def ball_query_scene():
    """Points with duplicates, centres incl. duplicates and an empty ball."""
    gen = torch.Generator().manual_seed(8)
    points = torch.rand(2, 50, 3, generator=gen)
    points[:, 10] = points[:, 3]  # duplicate of a centre below
    points[:, 30] = points[:, 3]
    centres = torch.cat([points[:, [3, 0, 7, 21]],
                         torch.full((2, 1, 3), 9.0)],
                        dim=1)
    return points, centres


@pytest.mark.parametrize('min_radius,max_radius,sample_num', [(0.0, 0.3, 5),
                                                              (0.0, 0.6, 40),
                                                              (0.2, 0.5, 6),
                                                              (0.45, 0.5, 3)])
def test_ball_query_matches_loops(min_radius, max_radius, sample_num):
    points, centres = ball_query_scene()
    out = torch_ops.ball_query(min_radius, max_radius, sample_num, points,
                               centres)
    assert out.dtype == torch.int32
    assert out.shape == (2, 5, sample_num)
    for b, m in np.ndindex(2, 5):
        expected = ref_ball_query(min_radius, max_radius, sample_num,
                                  points[b].numpy(), centres[b, m].numpy())
        assert out[b, m].tolist() == expected
    # the far centre has an empty ball: all zeros
    assert not out[:, -1].any()


def test_ball_query_shell_keeps_coincident_points():
    points = torch.tensor([[[0.0, 0, 0], [0.1, 0, 0], [0.0, 0, 0], [0.3, 0, 0],
                            [0.6, 0, 0]]])
    centre = torch.zeros(1, 1, 3)
    # d2 == 0 counts inside min_radius; 0.1 is too close, 0.6 too far; the
    # unfilled last slot keeps the first hit
    out = torch_ops.ball_query(0.2, 0.5, 4, points, centre)
    assert out[0, 0].tolist() == [0, 2, 3, 0]
    out = torch_ops.ball_query(0.2, 0.5, 2, points, centre)
    assert out[0, 0].tolist() == [0, 2]


def test_ball_query_stacked_mode():
    points, centres = ball_query_scene()
    xyz = torch.cat([points[0], points[1, :20]])
    new_xyz = torch.cat([centres[0], centres[1, :2]])
    xyz_cnt = torch.tensor([50, 20], dtype=torch.int32)
    new_cnt = torch.tensor([5, 2], dtype=torch.int32)
    out = torch_ops.ball_query(0.0, 0.3, 4, xyz, new_xyz, xyz_cnt, new_cnt)
    assert out.shape == (7, 4) and out.dtype == torch.int32
    for m in range(7):
        sample_points = points[0] if m < 5 else points[1, :20]
        expected = ref_stacked_ball_query(0.3, 4, sample_points.numpy(),
                                          new_xyz[m].numpy())
        assert out[m].tolist() == expected
    assert out[4].tolist() == [-1, 0, 0, 0]


def test_ball_query_rejects_bad_radii_and_shapes():
    points, centres = ball_query_scene()
    with pytest.raises(ValueError, match='min_radius < max_radius'):
        torch_ops.ball_query(0.5, 0.5, 4, points, centres)
    with pytest.raises(ValueError, match='center_xyz'):
        torch_ops.ball_query(0.0, 0.5, 4, points, centres[..., :2])


# ----------------------------------------------------------- nn / interp
def test_three_nn_matches_loops_with_ties():
    gen = torch.Generator().manual_seed(9)
    source = torch.rand(2, 8, 3, generator=gen)
    source[:, 5] = source[:, 1]  # exact tie: index 1 must rank first
    target = torch.cat([torch.rand(2, 6, 3, generator=gen), source[:, :2]],
                       dim=1)
    dist, idx = torch_ops.three_nn(target, source)
    assert idx.dtype == torch.int32 and dist.shape == (2, 8, 3)
    for b, n in np.ndindex(2, 8):
        ref_idx, ref_d2 = ref_nearest(target[b, n].numpy(), source[b].numpy(),
                                      3, math.inf)
        assert idx[b, n].tolist() == ref_idx
        np.testing.assert_allclose(
            dist[b, n].numpy(), np.sqrt(ref_d2), rtol=1e-6)
    assert idx[0, 7, :2].tolist() == [1, 5]


def test_three_nn_with_fewer_than_three_sources():
    target = torch.rand(1, 4, 3)
    source = torch.rand(1, 2, 3)
    dist, idx = torch_ops.three_nn(target, source)
    # the kernel's 1e40 sentinel is inf in float32; its index stays 0
    assert idx[..., 2].eq(0).all() and torch.isinf(dist[..., 2]).all()
    dist64, _ = torch_ops.three_nn(target.double(), source.double())
    assert torch.allclose(dist64[..., 2], torch.tensor(1e20).double())


def test_three_interpolate_matches_loops_and_gradcheck():
    gen = torch.Generator().manual_seed(10)
    features = torch.randn(2, 3, 5, generator=gen)
    idx = torch.randint(0, 5, (2, 6, 3), generator=gen).int()
    weight = torch.rand(2, 6, 3, generator=gen)
    out = torch_ops.three_interpolate(features, idx, weight)
    assert out.shape == (2, 3, 6)
    for b, c, n in np.ndindex(2, 3, 6):
        expected = sum(weight[b, n, j] * features[b, c, idx[b, n, j]]
                       for j in range(3))
        assert torch.isclose(out[b, c, n], expected, atol=1e-6)
    feats64 = features.double().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda f: torch_ops.three_interpolate(f, idx, weight.double()),
        (feats64, ))
    # as in mmcv, no gradient reaches the weights
    weight = weight.requires_grad_(True)
    feats = features.requires_grad_(True)
    torch_ops.three_interpolate(feats, idx, weight).sum().backward()
    assert weight.grad is None and feats.grad is not None


@pytest.mark.parametrize('transposed', [False, True])
def test_knn_matches_loops(transposed):
    xyz = torch.stack([grid_points(2), grid_points(3)])  # exact ties
    centres = xyz[:, [0, 5, 29]].contiguous()
    k = 7
    args = ((xyz.transpose(1, 2).contiguous(),
             centres.transpose(1, 2).contiguous()) if transposed else
            (xyz, centres))
    out = torch_ops.knn(k, *args, transposed)
    assert out.shape == (2, k, 3) and out.dtype == torch.int32
    for b, m in np.ndindex(2, 3):
        ref_idx, _ = ref_nearest(centres[b, m].numpy(), xyz[b].numpy(), k,
                                 1e10)
        assert out[b, :, m].tolist() == ref_idx


def test_knn_defaults_padding_and_k_range():
    xyz = torch.rand(1, 5, 3)
    out = torch_ops.knn(3, xyz)  # centres default to the points themselves
    assert out[0, 0].tolist() == [0, 1, 2, 3, 4]
    padded = torch_ops.knn(8, xyz, xyz[:, :2].contiguous())
    assert padded[0, 5:].eq(0).all()
    far = torch.tensor([[[2e5, 0.0, 0.0]]])  # d2 >= 1e10: never a neighbour
    assert torch_ops.knn(2, torch.cat([xyz, far], 1), xyz[:, :1])[0, :,
                                                                  0].max() < 5
    for k in (0, 100):
        with pytest.raises(ValueError, match='0 < k < 100'):
            torch_ops.knn(k, xyz)


# -------------------------------------------------------------------- boxes
def box_scene():
    """Axis-aligned boxes with points on their faces, and rotated boxes."""
    boxes = torch.tensor([[
        [1.0, 2.0, 0.5, 2.0, 1.0, 1.0, 0.0],  # x 0..2, y 1.5..2.5, z .5..1.5
        [1.75, 2.0, 0.0, 1.0, 1.0, 1.0, 0.0],  # x 1.25..2.25, z 0..1
        [-3.0, 0.0, 0.0, 4.0, 1.0, 2.0, math.pi / 2],
        [5.0, 5.0, 0.0, 2.0, 0.5, 1.0, math.pi / 4],
    ]])
    points = torch.tensor([[
        [1.0, 2.0, 0.5],  # bottom face of box 0: inside
        [1.0, 2.0, 1.5],  # top face: inside
        [0.0, 2.0, 1.0],  # side face x = 0: outside
        [2.0, 2.0, 1.0],  # side face x = 2 of box 0, top face of box 1
        [1.0, 1.5, 1.0],  # side face y = 1.5: outside
        [1.9, 2.0, 0.7],  # boxes 0 and 1: first is 0
        [1.0, 2.0, 1.6],  # above box 0
        [-3.0, 1.5, 1.0],  # rotated by 90 deg: long axis along y, inside
        [-1.5, 0.0, 1.0],  # would be inside without the rotation
        [5.6, 5.6, 0.5],  # along the 45-deg long axis: inside
        [5.6, 4.4, 0.5],  # across it: outside
    ]])
    return points, boxes


def test_points_in_boxes_all_matches_loops_and_cpu_kernel():
    from mmcv.ops import points_in_boxes_cpu
    points, boxes = box_scene()
    gen = torch.Generator().manual_seed(11)
    random_points = torch.rand(1, 200, 3, generator=gen) * 8 - 2
    random_boxes = torch.cat([
        torch.rand(1, 5, 3, generator=gen) * 4,
        torch.rand(1, 5, 3, generator=gen) * 2 + 0.5,
        torch.rand(1, 5, 1, generator=gen) * 6 - 3
    ], -1)
    for pts, bxs in ((points, boxes), (random_points, random_boxes)):
        out = torch_ops.points_in_boxes_all(pts, bxs)
        assert out.dtype == torch.int32
        assert out.shape == (1, pts.shape[1], bxs.shape[1])
        for n, t in np.ndindex(pts.shape[1], bxs.shape[1]):
            assert out[0, n, t] == ref_in_box(pts[0, n], bxs[0, t])
        assert torch.equal(out, points_in_boxes_cpu(pts, bxs))
    expected = [[1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0],
                [0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0],
                [0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]]
    assert torch_ops.points_in_boxes_all(points, boxes)[0].tolist() == \
        expected


def test_points_in_boxes_part_first_box_or_minus_one():
    points, boxes = box_scene()
    out = torch_ops.points_in_boxes_part(points, boxes)
    assert out.dtype == torch.int32
    assert out[0].tolist() == [0, 0, -1, 1, -1, 0, -1, 2, -1, 3, -1]
    no_boxes = torch_ops.points_in_boxes_part(points, boxes[:, :0])
    assert no_boxes.eq(-1).all()
    with pytest.raises(ValueError, match='boxes must have shape'):
        torch_ops.points_in_boxes_part(points, boxes[..., :6])
    with pytest.raises(ValueError, match='same batch size'):
        torch_ops.points_in_boxes_all(points.expand(2, -1, -1), boxes)


def test_chunked_computation_gives_the_same_results(monkeypatch):
    inputs = check.make_inputs(2, 300, 40, 4, 5, seed=12)
    xyz, centres, boxes = inputs['xyz'], inputs['centres'], inputs['boxes']

    def run_all():
        return (torch_ops.ball_query(0.1, 0.6, 8, xyz, centres),
                *torch_ops.three_nn(xyz, centres),
                torch_ops.knn(5, xyz, centres),
                torch_ops.points_in_boxes_all(xyz, boxes))

    whole = run_all()
    monkeypatch.setattr(torch_ops, 'CHUNK_NUMEL', 7)
    for a, b in zip(whole, run_all()):
        assert torch.equal(a, b)


# ------------------------------------------------------------------ dispatch
def test_public_names_and_module_references_are_dispatchers():
    import mmcv.ops
    import mmcv.ops.group_points
    import mmcv.ops.points_sampler
    from mmcv.ops.gather_points import GatherPoints
    from mmdet3d.models.dense_heads import groupfree3d_head, vote_head
    from mmdet3d.models.layers.pointnet_modules import (point_fp_module,
                                                        point_sa_module)
    from mmdet3d.structures.bbox_3d import base_box3d

    for name, dispatcher in DISPATCHERS.items():
        # the defining module (mmcv.ops re-exports the point ops; the
        # sparse convolution calls sparse_ops / sparse_functional)
        module = importlib.import_module(OP_MODULES[name])
        assert getattr(module, name) is dispatcher
        if hasattr(mmcv.ops, name):
            assert getattr(mmcv.ops, name) is dispatcher
        assert dispatcher.original is ORIGINALS[name]
        assert dispatcher.fallback is (getattr(torch_ops, name, None)
                                       or getattr(sparse_conv, name))
    assert ORIGINALS['gather_points'] == GatherPoints.apply
    references = [
        (mmcv.ops.points_sampler, 'furthest_point_sample'),
        (mmcv.ops.points_sampler, 'furthest_point_sample_with_dist'),
        (mmcv.ops.group_points, 'ball_query'),
        (mmcv.ops.group_points, 'knn'),
        (mmcv.ops.group_points, 'grouping_operation'),
        (point_sa_module, 'gather_points'),
        (point_fp_module, 'three_nn'),
        (point_fp_module, 'three_interpolate'),
        (groupfree3d_head, 'gather_points'),
        (vote_head, 'furthest_point_sample'),
        (base_box3d, 'points_in_boxes_part'),
        (base_box3d, 'points_in_boxes_all'),
    ]
    for module, name in references:
        assert getattr(module, name) is DISPATCHERS[name], module.__name__


def test_install_is_idempotent_and_patches_new_references():
    assert dispatch.install() == 0
    probe = types.ModuleType('projects._cpu_point_ops_probe')
    probe.knn = ORIGINALS['knn']
    probe.gather = ORIGINALS['gather_points']
    sys.modules[probe.__name__] = probe
    try:
        assert dispatch.install() == 2
        assert probe.knn is DISPATCHERS['knn']
        assert probe.gather is DISPATCHERS['gather_points']
    finally:
        del sys.modules[probe.__name__]


def test_dispatcher_routes_cuda_tensors_to_the_original():

    class LooksLikeCuda(torch.Tensor):

        @property
        def is_cuda(self):
            return True

    calls = []
    dispatcher = dispatch.make_dispatcher(
        'gather_points', lambda *args: calls.append('original'),
        lambda *args: calls.append('fallback'))
    dispatcher(torch.zeros(1, 1, 2), torch.zeros(1, 1))
    dispatcher(
        torch.zeros(1, 1, 2).as_subclass(LooksLikeCuda), torch.zeros(1, 1))
    # ball_query: the first *tensor* argument decides, after the floats
    dispatcher(0.0, 1.0, 4, torch.zeros(1).as_subclass(LooksLikeCuda))
    assert calls == ['fallback', 'original', 'original']


def test_mmcv_and_mmdet3d_modules_run_on_cpu():
    from mmcv.ops import PointsSampler, QueryAndGroup, three_interpolate
    from mmdet3d.models.layers.pointnet_modules import (PointFPModule,
                                                        PointSAModule)
    from mmdet3d.structures import DepthInstance3DBoxes

    gen = torch.Generator().manual_seed(13)
    xyz = torch.rand(2, 64, 3, generator=gen)
    features = torch.randn(2, 4, 64, generator=gen)
    for modes, ranges, nums in ((['D-FPS'], [-1], [8]), (['F-FPS'], [-1], [8]),
                                (['FS'], [-1], [8]), (['D-FPS',
                                                       'F-FPS'], [32,
                                                                  -1], [4,
                                                                        4])):
        sampler = PointsSampler(nums, modes, ranges)
        indices = sampler(xyz, features)
        assert indices.shape[0] == 2 and indices.device.type == 'cpu'
    indices = PointsSampler([8])(xyz, None)
    assert torch.equal(indices, torch_ops.furthest_point_sample(xyz, 8))

    centres = xyz[:, :8].contiguous()
    grouped = QueryAndGroup(0.4, 6)(xyz, centres, features)
    assert grouped.shape == (2, 3 + 4, 8, 6)
    grouped_knn = QueryAndGroup(None, 6)(xyz, centres, features)
    assert grouped_knn.shape == (2, 3 + 4, 8, 6)

    sa = PointSAModule(
        num_point=8, radius=0.4, num_sample=6, mlp_channels=[4, 8]).eval()
    new_xyz, new_features, new_indices = sa(xyz, features)
    assert new_features.shape == (2, 8, 8)
    fp = PointFPModule(mlp_channels=[4 + 8, 8]).eval()
    assert fp(xyz, new_xyz, features, new_features).shape == (2, 8, 64)
    dist, idx = torch_ops.three_nn(xyz, new_xyz)
    assert three_interpolate(new_features, idx, dist).shape == (2, 8, 64)

    boxes = DepthInstance3DBoxes(
        torch.tensor([[0.5, 0.5, 0.5, 0.6, 0.6, 0.6, 0.3]]),
        origin=(0.5, 0.5, 0.5))
    inside = boxes.points_in_boxes_all(xyz[0])
    assert inside.shape == (64, 1)
    first = boxes.points_in_boxes_part(xyz[0])
    assert torch.equal(first, torch.where(inside[:, 0] > 0, 0, -1).int())


# --------------------------------------------------- check script (no CUDA)
def test_check_script_comparisons_accept_equal_and_flag_wrong_ops(monkeypatch):
    references = {
        name: getattr(torch_ops, name)
        for name in ORIGINALS if hasattr(torch_ops, name)
    }
    monkeypatch.setattr(check, 'REFERENCE_OPS', references)
    monkeypatch.setattr(check, 'REFERENCE_DEVICE', 'cpu')
    inputs = check.make_inputs(2, 200, 16, 4, 4, seed=14)
    results = check.run_all(inputs, 'cpu', repeats=1)
    assert set(results) == set(check.COMPARISONS)
    assert all(result.ok for result in results.values()), [
        result.line() for result in results.values()
    ]
    wrong = dict(references)
    wrong['ball_query'] = lambda *args: torch_ops.ball_query(*args) + 1
    wrong['three_interpolate'] = (
        lambda f, i, w: torch_ops.three_interpolate(f, i, w) * 1.01)
    wrong['points_in_boxes_all'] = (
        lambda p, b: 1 - torch_ops.points_in_boxes_all(p, b))
    wrong['furthest_point_sample'] = (
        lambda x, n: torch_ops.furthest_point_sample(x.flip(1), n))
    monkeypatch.setattr(check, 'REFERENCE_OPS', wrong)
    for key in ('ball_query', 'three_interpolate', 'points_in_boxes_all',
                'furthest_point_sample'):
        result = check.COMPARISONS[key](inputs, 'cpu', 1)
        assert not result.ok, result.line()


# ------------------------------------------------------------ CUDA kernels
@needs_cuda
@pytest.mark.parametrize('key', sorted(check.COMPARISONS))
def test_fallback_matches_mmcv_cuda_kernel(key):
    inputs = check.make_inputs(2, 2048, 256, 16, 8, seed=15)
    result = check.COMPARISONS[key](inputs, 'cpu', 1)
    assert result.ok, result.line()


@needs_cuda
def test_dispatchers_use_the_kernels_for_cuda_tensors():
    inputs = check.make_inputs(2, 512, 32, 8, 4, seed=16)
    xyz = inputs['xyz'].cuda()
    centres = inputs['centres'].cuda()
    for name, args in (('furthest_point_sample', (xyz, 32)),
                       ('ball_query', (0.0, 0.4, 8, xyz, centres)),
                       ('knn', (4, xyz, centres, False)),
                       ('points_in_boxes_all', (xyz, inputs['boxes'].cuda()))):
        out = DISPATCHERS[name](*args)
        assert out.is_cuda
        assert torch.equal(out, ORIGINALS[name](*args))


# ---------------------------------------------------------------- end to end
def small_groupfree3d_cfg(num_classes=3, dims=64):
    """A tiny ScanNet-style (with_rot=False) GroupFree3DNet."""
    transformer = dict(
        type='BaseTransformerLayer',
        attn_cfgs=dict(
            type='GroupFree3DMHA',
            embed_dims=dims,
            num_heads=4,
            attn_drop=0.1,
            dropout_layer=dict(type='Dropout', drop_prob=0.1)),
        ffn_cfgs=dict(
            embed_dims=dims,
            feedforward_channels=dims,
            ffn_drop=0.1,
            act_cfg=dict(type='ReLU', inplace=True)),
        operation_order=('self_attn', 'norm', 'cross_attn', 'norm', 'ffn',
                         'norm'))
    focal = dict(
        type='mmdet.FocalLoss',
        use_sigmoid=True,
        gamma=2.0,
        alpha=0.25,
        loss_weight=1.0)
    return dict(
        type='GroupFree3DNet',
        data_preprocessor=dict(type='Det3DDataPreprocessor'),
        backbone=dict(
            type='PointNet2SASSG',
            in_channels=3,
            num_points=(64, 32, 16, 8),
            radius=(0.2, 0.4, 0.8, 1.2),
            num_samples=(16, 8, 8, 8),
            sa_channels=((16, 16, 32), (32, 32, 64), (32, 32, 64), (32, 32,
                                                                    64)),
            fp_channels=((dims, dims), (dims, dims)),
            norm_cfg=dict(type='BN2d'),
            sa_cfg=dict(
                type='PointSAModule',
                pool_mod='max',
                use_xyz=True,
                normalize_xyz=True)),
        bbox_head=dict(
            type='GroupFree3DHead',
            num_classes=num_classes,
            in_channels=dims,
            num_decoder_layers=2,
            num_proposal=16,
            size_cls_agnostic=False,
            bbox_coder=dict(
                type='GroupFree3DBBoxCoder',
                num_sizes=num_classes,
                num_dir_bins=1,
                with_rot=False,
                size_cls_agnostic=False,
                mean_sizes=[[0.3, 0.4, 0.5]] * num_classes),
            transformerlayers=transformer,
            decoder_self_posembeds=dict(
                type='ConvBNPositionalEncoding',
                input_channel=6,
                num_pos_feats=dims),
            decoder_cross_posembeds=dict(
                type='ConvBNPositionalEncoding',
                input_channel=3,
                num_pos_feats=dims),
            pred_layer_cfg=dict(
                in_channels=dims, shared_conv_channels=(dims, dims),
                bias=True),
            sampling_objectness_loss=dict(focal, loss_weight=8.0),
            objectness_loss=focal,
            center_loss=dict(
                type='mmdet.SmoothL1Loss',
                beta=0.04,
                reduction='sum',
                loss_weight=10.0),
            dir_class_loss=dict(
                type='mmdet.CrossEntropyLoss',
                reduction='sum',
                loss_weight=1.0),
            dir_res_loss=dict(
                type='mmdet.SmoothL1Loss', reduction='sum', loss_weight=10.0),
            size_class_loss=dict(
                type='mmdet.CrossEntropyLoss',
                reduction='sum',
                loss_weight=1.0),
            size_res_loss=dict(
                type='mmdet.SmoothL1Loss',
                beta=1.0 / 9.0,
                reduction='sum',
                loss_weight=10.0 / 9.0),
            semantic_loss=dict(
                type='mmdet.CrossEntropyLoss',
                reduction='sum',
                loss_weight=1.0)),
        train_cfg=dict(sample_mode='kps'),
        # 'fps' at test time runs the head's PointsSampler as well
        test_cfg=dict(
            sample_mode='fps',
            nms_thr=0.25,
            score_thr=0.0,
            per_class_proposal=True,
            prediction_stages='last'))


def test_groupfree3d_trains_and_predicts_on_cpu(monkeypatch):
    import mmcv.ops.points_sampler
    from mmdet3d.registry import MODELS
    from mmdet3d.structures.bbox_3d import base_box3d
    from mmdet3d.testing import create_detector_inputs
    from mmengine.config import ConfigDict
    from mmengine.registry import DefaultScope

    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        # ConfigDict: the head reads train_cfg.sample_mode as an attribute
        model = MODELS.build(ConfigDict(small_groupfree3d_cfg()))
    samples = [
        create_detector_inputs(
            seed=seed,
            num_points=256,
            num_gt_instance=3,
            points_feat_dim=3,
            with_pts_semantic_mask=True,
            with_pts_instance_mask=True) for seed in (0, 1)
    ]
    packed = dict(
        inputs=dict(points=[s['inputs']['points'][0] for s in samples]),
        data_samples=[s['data_samples'][0] for s in samples])

    model.train()
    data = model.data_preprocessor(packed, True)
    losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    # the first SA layer's features reach the loss only through
    # grouping_operation / three_interpolate of later layers
    first_conv = model.backbone.SA_modules[0].mlps[0][0].conv.weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
    assert all(
        torch.isfinite(p.grad).all() for p in model.parameters()
        if p.grad is not None)

    # record the CPU calls of the ops that only predict uses
    calls = []
    for module, name in ((mmcv.ops.points_sampler, 'furthest_point_sample'),
                         (base_box3d, 'points_in_boxes_all')):

        def spy(*args, _op=getattr(module, name), _name=name):
            calls.append((_name, args[0].device.type, args[0].shape[1]))
            return _op(*args)

        monkeypatch.setattr(module, name, spy)
    model.eval()
    with torch.no_grad():
        results = model(
            **model.data_preprocessor(packed, False), mode='predict')
    assert len(results) == 2
    for result in results:
        pred = result.pred_instances_3d
        num = len(pred.scores_3d)
        assert pred.bboxes_3d.tensor.shape == (num, 7)
        assert pred.labels_3d.shape == (num, )
        assert torch.isfinite(pred.bboxes_3d.tensor).all()
    # head FPS over the 32 seeds; NMS counts points in boxes per sample
    assert ('furthest_point_sample', 'cpu', 32) in calls
    assert calls.count(('points_in_boxes_all', 'cpu', 256)) == 2
