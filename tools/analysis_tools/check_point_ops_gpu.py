"""Compare the pure-torch point ops with mmcv's CUDA kernels (GPU machine).

For every operator of :mod:`projects.common.cpu_point_ops.torch_ops` this
script runs mmcv's original (``projects.common.cpu_point_ops.ORIGINALS``) on
CUDA and the torch version on ``--fallback-device`` (the CPU by default, the
path the dispatchers take) on the same random scene-sized inputs, and prints
per op

- ``max_abs``: the largest absolute difference of float outputs (and of the
  gradients w.r.t. ``features`` for the differentiable ops);
- ``mismatch``: differing index rows (FPS: batch rows; queries: centre
  rows; boxes: points), and ``explained``: how many of those are float
  near-ties (two candidates within a relative 1e-5 in float64: FPS picks,
  neighbour distances) or points within 1e-5 of a ball / box boundary,
  where float32 rounding (e.g. FMA on the GPU) may decide either way;
- the median run time of each side.

Exit status 1 if any op has an unexplained mismatch or a float difference
above its tolerance, else 0. ``tests/common/test_cpu_point_ops.py`` runs the
same comparisons on small inputs when CUDA is available.

Example::

    python tools/analysis_tools/check_point_ops_gpu.py \
        --num-points 20000 --num-centres 1024 --batch-size 8
"""
import argparse
import math
import os.path as osp
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import torch
from torch import Tensor

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from projects.common.cpu_point_ops import ORIGINALS, torch_ops  # noqa: E402

#: Relative gap under which two float candidates count as a tie.
TIE_RTOL = 1e-5
#: The reference implementations and their device: mmcv's kernels on CUDA.
#: (Tests swap in other references to check the comparison logic itself.)
REFERENCE_OPS: Dict[str, Callable] = ORIGINALS
REFERENCE_DEVICE = 'cuda'


@dataclass
class Comparison:
    """Outcome of comparing one op's fallback with the CUDA kernel."""

    op: str
    max_abs: float = 0.0
    tol: float = 0.0
    rows: int = 0
    mismatches: int = 0
    explained: int = 0
    fallback_s: float = math.nan
    cuda_s: float = math.nan

    @property
    def ok(self) -> bool:
        return (self.mismatches == self.explained and self.max_abs <= self.tol)

    def line(self) -> str:
        status = 'OK' if self.ok else 'FAIL'
        return (f'{self.op:<32} max_abs={self.max_abs:<10.3g} '
                f'(tol {self.tol:.1g}) mismatch={self.mismatches}/'
                f'{self.rows} explained={self.explained} '
                f'fallback={self.fallback_s * 1e3:9.2f} ms '
                f'cuda={self.cuda_s * 1e3:8.2f} ms  {status}')


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn: Callable, device, repeats: int):
    """Run ``fn`` once to warm up, then ``repeats`` times; return the last
    result and the median wall time in seconds."""
    device = torch.device(device)
    result = fn()
    times = []
    for _ in range(max(repeats, 1)):
        _sync(device)
        start = time.perf_counter()
        result = fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def make_inputs(batch_size: int = 2,
                num_points: int = 512,
                num_centres: int = 64,
                channels: int = 8,
                num_boxes: int = 6,
                seed: int = 0) -> Dict[str, Tensor]:
    """Random indoor-scene-like inputs on the CPU (float32).

    Points fill a 5 x 5 x 2.5 m room; centres are the first
    ``num_centres`` points; boxes (bottom centre, sizes 0.3-2 m, random
    yaw) lie in the room.
    """
    gen = torch.Generator().manual_seed(seed)
    room = torch.tensor([5.0, 5.0, 2.5])
    xyz = torch.rand(batch_size, num_points, 3, generator=gen) * room
    boxes = torch.cat([
        torch.rand(batch_size, num_boxes, 3, generator=gen) * room * 0.8,
        0.3 + 1.7 * torch.rand(batch_size, num_boxes, 3, generator=gen),
        (torch.rand(batch_size, num_boxes, 1, generator=gen) * 2 - 1) * math.pi
    ],
                      dim=-1)
    return dict(
        xyz=xyz,
        centres=xyz[:, :num_centres].contiguous(),
        features=torch.randn(batch_size, channels, num_points, generator=gen),
        boxes=boxes)


def _float_diff(a: Tensor, b: Tensor) -> float:
    if a.numel() == 0:
        return 0.0
    return (a.double().cpu() - b.double().cpu()).abs().max().item()


def _run_pair(name: str, fallback_args: tuple, cuda_args: tuple,
              fallback_device, repeats: int):
    """Run the torch op and mmcv's CUDA op; return both results + times."""
    fallback_out, fallback_s = timed(
        lambda: getattr(torch_ops, name)(*fallback_args), fallback_device,
        repeats)
    cuda_out, cuda_s = timed(lambda: REFERENCE_OPS[name](*cuda_args),
                             REFERENCE_DEVICE, repeats)
    return fallback_out, cuda_out, fallback_s, cuda_s


def _to(args: tuple, device) -> tuple:
    return tuple(
        arg.to(device).contiguous() if isinstance(arg, Tensor) else arg
        for arg in args)


def _first_divergence_is_tie(min_dist_fn: Callable[[Tensor], Tensor],
                             idx_a: Tensor, idx_b: Tensor) -> bool:
    """For one FPS row: are the two picks at the first difference tied?"""
    step = int((idx_a != idx_b).nonzero()[0])
    min_dist = min_dist_fn(idx_a[:step])
    dist_a = min_dist[idx_a[step]].item()
    dist_b = min_dist[idx_b[step]].item()
    return abs(dist_a - dist_b) <= TIE_RTOL * max(abs(dist_a), abs(dist_b))


def _compare_fps_rows(result: Comparison, idx_a: Tensor, idx_b: Tensor,
                      min_dist_fn_of_row: Callable[[int], Callable]) -> None:
    idx_a, idx_b = idx_a.long().cpu(), idx_b.long().cpu()
    result.rows = idx_a.shape[0]
    for row in range(idx_a.shape[0]):
        if torch.equal(idx_a[row], idx_b[row]):
            continue
        result.mismatches += 1
        if _first_divergence_is_tie(
                min_dist_fn_of_row(row), idx_a[row], idx_b[row]):
            result.explained += 1


def compare_furthest_point_sample(inputs, fallback_device='cpu', repeats=3):
    xyz, num_samples = inputs['xyz'], inputs['centres'].shape[1]
    result = Comparison('furthest_point_sample')
    out, ref, result.fallback_s, result.cuda_s = _run_pair(
        'furthest_point_sample', _to((xyz, num_samples), fallback_device),
        _to((xyz, num_samples), REFERENCE_DEVICE), fallback_device, repeats)
    xyz64 = xyz.double()

    def min_dist_fn_of_row(row):
        return lambda picked: torch.cdist(xyz64[row], xyz64[row, picked]
                                          ).square().min(dim=1).values

    _compare_fps_rows(result, out, ref, min_dist_fn_of_row)
    return result


def compare_furthest_point_sample_with_dist(inputs,
                                            fallback_device='cpu',
                                            repeats=3):
    # squared feature distances of the first <= 2048 points, as F-FPS uses
    num = min(inputs['xyz'].shape[1], 2048)
    feats = torch.cat(
        [inputs['xyz'][:, :num], inputs['features'][:, :, :num].mT], dim=2)
    dist = torch.cdist(feats, feats).square().contiguous()
    num_samples = min(inputs['centres'].shape[1], num)
    result = Comparison('furthest_point_sample_with_dist')
    out, ref, result.fallback_s, result.cuda_s = _run_pair(
        'furthest_point_sample_with_dist',
        _to((dist, num_samples), fallback_device),
        _to((dist, num_samples), REFERENCE_DEVICE), fallback_device, repeats)

    def min_dist_fn_of_row(row):
        return lambda picked: dist[row, picked].double().min(dim=0).values

    _compare_fps_rows(result, out, ref, min_dist_fn_of_row)
    return result


def _compare_differentiable(name: str, features: Tensor, other_args: tuple,
                            fallback_device, repeats: int,
                            rtol: float) -> Comparison:
    """Forward outputs and gradients w.r.t. features of both versions."""
    result = Comparison(name)
    fallback_args = _to((features, *other_args), fallback_device)
    cuda_args = _to((features, *other_args), REFERENCE_DEVICE)
    out, ref, result.fallback_s, result.cuda_s = _run_pair(
        name, fallback_args, cuda_args, fallback_device, repeats)
    grad_out = torch.randn(
        ref.shape, generator=torch.Generator().manual_seed(1))
    grads = []
    for fn, args in ((getattr(torch_ops, name), fallback_args),
                     (REFERENCE_OPS[name], cuda_args)):
        feats = args[0].detach().clone().requires_grad_(True)
        fn(feats, *args[1:]).backward(grad_out.to(feats.device))
        grads.append(feats.grad)
    result.max_abs = max(_float_diff(out, ref), _float_diff(*grads))
    scale = max(1.0, ref.abs().max().item(), grads[1].abs().max().item())
    result.tol = rtol * scale
    result.rows = ref.numel()
    return result


def compare_gather_points(inputs, fallback_device='cpu', repeats=3):
    features = inputs['features']
    num = inputs['centres'].shape[1]
    # FPS-like indices incl. repeats, as int32 the way mmcv passes them
    indices = torch.randint(
        0,
        features.shape[2], (features.shape[0], num),
        generator=torch.Generator().manual_seed(2)).int()
    # gradients accumulate repeated indices with atomics: tiny float noise
    return _compare_differentiable('gather_points', features, (indices, ),
                                   fallback_device, repeats, 1e-5)


def _ball_query_inputs(inputs, min_radius, max_radius, sample_num):
    return (min_radius, max_radius, sample_num, inputs['xyz'],
            inputs['centres'])


def _ball_row_is_ambiguous(xyz: Tensor, centre: Tensor, min_radius: float,
                           max_radius: float) -> bool:
    dist2 = (xyz.double() - centre.double()).square().sum(-1)
    for radius in (min_radius, max_radius):
        near = (dist2 - radius**2).abs() <= TIE_RTOL * radius**2
        if radius > 0 and bool(near.any()):
            return True
    return False


def compare_ball_query(inputs,
                       fallback_device='cpu',
                       repeats=3,
                       min_radius=0.0,
                       max_radius=0.2,
                       sample_num=64):
    result = Comparison(f'ball_query(r={min_radius}-{max_radius},'
                        f'k={sample_num})')
    args = _ball_query_inputs(inputs, min_radius, max_radius, sample_num)
    out, ref, result.fallback_s, result.cuda_s = _run_pair(
        'ball_query', _to(args, fallback_device), _to(args, REFERENCE_DEVICE),
        fallback_device, repeats)
    out, ref = out.cpu(), ref.cpu()
    differs = (out != ref).any(dim=-1)
    result.rows = differs.numel()
    for batch, centre in differs.nonzero().tolist():
        result.mismatches += 1
        if _ball_row_is_ambiguous(inputs['xyz'][batch],
                                  inputs['centres'][batch, centre], min_radius,
                                  max_radius):
            result.explained += 1
    return result


def compare_grouping_operation(inputs, fallback_device='cpu', repeats=3):
    indices = torch_ops.ball_query(0.0, 0.4, 16, inputs['xyz'],
                                   inputs['centres'])
    return _compare_differentiable('grouping_operation', inputs['features'],
                                   (indices, ), fallback_device, repeats, 1e-5)


def stacked_inputs(inputs) -> Dict[str, Tensor]:
    """The batch as mmcv's stacked (N1 + N2 ...) layout, uneven counts.

    Sample b keeps its first N - 7b points and M - 3b centres.
    """
    batch_size, num_points, _ = inputs['xyz'].shape
    num_centres = inputs['centres'].shape[1]
    point_counts = [max(num_points - 7 * b, 1) for b in range(batch_size)]
    centre_counts = [max(num_centres - 3 * b, 1) for b in range(batch_size)]
    return dict(
        xyz=torch.cat([
            inputs['xyz'][b, :count] for b, count in enumerate(point_counts)
        ]),
        centres=torch.cat([
            inputs['centres'][b, :count]
            for b, count in enumerate(centre_counts)
        ]),
        features=torch.cat([
            inputs['features'][b, :, :count].T
            for b, count in enumerate(point_counts)
        ]).contiguous(),
        xyz_cnt=torch.tensor(point_counts, dtype=torch.int32),
        centre_cnt=torch.tensor(centre_counts, dtype=torch.int32))


def compare_ball_query_stacked(inputs,
                               fallback_device='cpu',
                               repeats=3,
                               radius=0.2,
                               sample_num=16):
    stacked = stacked_inputs(inputs)
    args = (0.0, radius, sample_num, stacked['xyz'], stacked['centres'],
            stacked['xyz_cnt'], stacked['centre_cnt'])
    result = Comparison(f'ball_query_stacked(r={radius},k={sample_num})')
    out, ref, result.fallback_s, result.cuda_s = _run_pair(
        'ball_query', _to(args, fallback_device), _to(args, REFERENCE_DEVICE),
        fallback_device, repeats)
    out, ref = out.cpu(), ref.cpu()
    differs = (out != ref).any(dim=-1)
    result.rows = differs.numel()
    sample_of_row = torch.repeat_interleave(
        torch.arange(len(stacked['centre_cnt'])), stacked['centre_cnt'].long())
    point_starts = torch.cumsum(stacked['xyz_cnt'].long(), 0) - \
        stacked['xyz_cnt'].long()
    for row in differs.nonzero()[:, 0].tolist():
        result.mismatches += 1
        sample = int(sample_of_row[row])
        start = int(point_starts[sample])
        points = stacked['xyz'][start:start + int(stacked['xyz_cnt'][sample])]
        if _ball_row_is_ambiguous(points, stacked['centres'][row], 0.0,
                                  radius):
            result.explained += 1
    return result


def compare_grouping_operation_stacked(inputs,
                                       fallback_device='cpu',
                                       repeats=3):
    stacked = stacked_inputs(inputs)
    indices = torch_ops.ball_query(0.0, 0.4, 16, stacked['xyz'],
                                   stacked['centres'], stacked['xyz_cnt'],
                                   stacked['centre_cnt'])
    indices[indices[:, 0] < 0] = 0  # empty balls, as mmdet3d's callers do
    result = _compare_differentiable(
        'grouping_operation', stacked['features'],
        (indices, stacked['xyz_cnt'], stacked['centre_cnt']), fallback_device,
        repeats, 1e-5)
    result.op = 'grouping_operation_stacked'
    return result


def _neighbour_rows_tied(query: Tensor, points: Tensor, idx_a: Tensor,
                         idx_b: Tensor) -> bool:
    """Do two neighbour lists have the same distances (up to ties)?"""
    dist_a = (points[idx_a.long()].double() - query.double()).square().sum(-1)
    dist_b = (points[idx_b.long()].double() - query.double()).square().sum(-1)
    dist_a, dist_b = dist_a.sort().values, dist_b.sort().values
    scale = torch.maximum(dist_a.abs(), dist_b.abs()).clamp(min=1e-12)
    return bool(((dist_a - dist_b).abs() <= TIE_RTOL * scale).all())


def compare_three_nn(inputs, fallback_device='cpu', repeats=3):
    # targets: all points; sources: the centres (as PointFPModule does)
    args = (inputs['xyz'], inputs['centres'])
    result = Comparison('three_nn')
    (dist, idx), (ref_dist, ref_idx), result.fallback_s, result.cuda_s = (
        _run_pair('three_nn', _to(args, fallback_device),
                  _to(args, REFERENCE_DEVICE), fallback_device, repeats))
    idx, ref_idx = idx.cpu(), ref_idx.cpu()
    result.max_abs = _float_diff(dist, ref_dist)
    result.tol = 1e-5 * max(1.0, ref_dist.abs().max().item())
    differs = (idx != ref_idx).any(dim=-1)
    result.rows = differs.numel()
    for batch, row in differs.nonzero().tolist():
        result.mismatches += 1
        if _neighbour_rows_tied(inputs['xyz'][batch,
                                              row], inputs['centres'][batch],
                                idx[batch, row], ref_idx[batch, row]):
            result.explained += 1
    return result


def compare_three_interpolate(inputs, fallback_device='cpu', repeats=3):
    centres = inputs['centres']
    dist, idx = torch_ops.three_nn(inputs['xyz'], centres)
    recip = 1.0 / (dist + 1e-8)
    weight = recip / recip.sum(dim=2, keepdim=True)
    # source features live on the centres (the first points)
    features = inputs['features'][:, :, :centres.shape[1]].contiguous()
    return _compare_differentiable('three_interpolate', features,
                                   (idx, weight), fallback_device, repeats,
                                   1e-5)


def compare_knn(inputs, fallback_device='cpu', repeats=3, k=16):
    args = (k, inputs['xyz'], inputs['centres'], False)
    result = Comparison(f'knn(k={k})')
    out, ref, result.fallback_s, result.cuda_s = _run_pair(
        'knn', _to(args, fallback_device), _to(args, REFERENCE_DEVICE),
        fallback_device, repeats)
    out, ref = out.cpu(), ref.cpu()  # (B, k, npoint)
    differs = (out != ref).any(dim=1)
    result.rows = differs.numel()
    for batch, centre in differs.nonzero().tolist():
        result.mismatches += 1
        if _neighbour_rows_tied(inputs['centres'][batch, centre],
                                inputs['xyz'][batch], out[batch, :, centre],
                                ref[batch, :, centre]):
            result.explained += 1
    return result


def _box_margins(points: Tensor, boxes: Tensor) -> Tensor:
    """(N, T) float64 margin of each point inside each box.

    Positive inside, negative outside; membership can only depend on float
    rounding where it is about 0.
    """
    points, boxes = points.double(), boxes.double()
    shift = points[:, None, :2] - boxes[None, :, :2]
    cos_a, sin_a = torch.cos(boxes[:, 6]), torch.sin(boxes[:, 6])
    local_x = shift[..., 0] * cos_a + shift[..., 1] * sin_a
    local_y = -shift[..., 0] * sin_a + shift[..., 1] * cos_a
    centre_z = boxes[:, 2] + boxes[:, 5] / 2
    return torch.stack([
        boxes[:, 3] / 2 - local_x.abs(), boxes[:, 4] / 2 - local_y.abs(),
        boxes[:, 5] / 2 - (points[:, None, 2] - centre_z).abs()
    ]).min(dim=0).values


def _compare_boxes(name: str, inputs, fallback_device, repeats):
    args = (inputs['xyz'], inputs['boxes'])
    result = Comparison(name)
    out, ref, result.fallback_s, result.cuda_s = _run_pair(
        name, _to(args, fallback_device), _to(args, REFERENCE_DEVICE),
        fallback_device, repeats)
    out, ref = out.cpu(), ref.cpu()
    differs = out != ref
    if differs.dim() == 3:
        differs = differs.any(dim=-1)
    result.rows = differs.numel()
    for batch, point in differs.nonzero().tolist():
        result.mismatches += 1
        margins = _box_margins(inputs['xyz'][batch, point:point + 1],
                               inputs['boxes'][batch])
        if bool((margins.abs() <= TIE_RTOL).any()):
            result.explained += 1
    return result


def compare_points_in_boxes_part(inputs, fallback_device='cpu', repeats=3):
    return _compare_boxes('points_in_boxes_part', inputs, fallback_device,
                          repeats)


def compare_points_in_boxes_all(inputs, fallback_device='cpu', repeats=3):
    return _compare_boxes('points_in_boxes_all', inputs, fallback_device,
                          repeats)


def compare_ball_query_shell(inputs, fallback_device='cpu', repeats=3):
    """Ball query with min_radius > 0 (a shell), 16 samples."""
    return compare_ball_query(
        inputs,
        fallback_device,
        repeats,
        min_radius=0.2,
        max_radius=0.8,
        sample_num=16)


#: op key -> comparison function(inputs, fallback_device, repeats)
COMPARISONS: Dict[str, Callable[..., Comparison]] = {
    'furthest_point_sample': compare_furthest_point_sample,
    'furthest_point_sample_with_dist': compare_furthest_point_sample_with_dist,
    'gather_points': compare_gather_points,
    'ball_query': compare_ball_query,
    'ball_query_shell': compare_ball_query_shell,
    'grouping_operation': compare_grouping_operation,
    'ball_query_stacked': compare_ball_query_stacked,
    'grouping_operation_stacked': compare_grouping_operation_stacked,
    'three_nn': compare_three_nn,
    'three_interpolate': compare_three_interpolate,
    'knn': compare_knn,
    'points_in_boxes_part': compare_points_in_boxes_part,
    'points_in_boxes_all': compare_points_in_boxes_all,
}


def run_all(inputs: Dict[str, Tensor],
            fallback_device='cpu',
            repeats: int = 3,
            ops: Optional[Tuple[str, ...]] = None) -> Dict[str, Comparison]:
    """Run the selected comparisons (all by default)."""
    return {
        key: COMPARISONS[key](inputs, fallback_device, repeats)
        for key in (ops or COMPARISONS)
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Compare the pure-torch point ops with mmcv CUDA ops')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--num-points', type=int, default=20000)
    parser.add_argument('--num-centres', type=int, default=1024)
    parser.add_argument('--channels', type=int, default=128)
    parser.add_argument('--num-boxes', type=int, default=32)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument(
        '--fallback-device',
        default='cpu',
        help='device of the torch ops (cpu: the dispatcher path)')
    parser.add_argument(
        '--ops',
        nargs='+',
        choices=sorted(COMPARISONS),
        help='subset of comparisons (default: all)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print('check_point_ops_gpu: CUDA is not available; this script '
              'compares against mmcv CUDA kernels and needs a GPU')
        return 2
    inputs = make_inputs(args.batch_size, args.num_points, args.num_centres,
                         args.channels, args.num_boxes, args.seed)
    print(f'B={args.batch_size} N={args.num_points} M={args.num_centres} '
          f'C={args.channels} T={args.num_boxes} fallback on '
          f'{args.fallback_device}, {torch.cuda.get_device_name()}')
    results = run_all(inputs, args.fallback_device, args.repeats,
                      tuple(args.ops) if args.ops else None)
    for result in results.values():
        print(result.line())
    failed = [key for key, result in results.items() if not result.ok]
    print('all ops match' if not failed else f'MISMATCH in {failed}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
