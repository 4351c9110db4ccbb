"""Pure-torch versions of mmcv 2.1.0's CUDA-only point operators.

Every function takes the same arguments in the same order as the mmcv
function of the same name (``mmcv.ops.<name>``) and returns the same shapes,
dtypes and values, following the CUDA kernels in
``mmcv/ops/csrc/common/cuda/*_cuda_kernel.cuh``:

- index outputs are ``torch.int32`` wherever mmcv returns int32;
- squared distances are summed in the kernels' order
  ``dx * dx + dy * dy + dz * dz`` in the input dtype, so results agree with
  the kernels up to floating-point contraction (FMA) on the GPU;
- the operators that mmcv marks non-differentiable (sampling, queries,
  neighbour search, box membership) return tensors without autograd history;
  ``gather_points``, ``grouping_operation`` and ``three_interpolate`` are
  differentiable w.r.t. ``features`` only, as in mmcv (whose
  ``ThreeInterpolate`` returns no gradient for ``weight``).

Known differences, all confined to exact ties:

- ``furthest_point_sample*`` breaks ties by the lowest index (``argmax``);
  the CUDA block reduction may pick another of the tied points.
- ``knn`` returns tied neighbours ordered by index; mmcv's heap may keep and
  order tied points differently (the returned distances are identical).

Pairwise computations are chunked over query points so that no block holds
more than :data:`CHUNK_NUMEL` pairs, which keeps e.g. a ball query over
B=8, N=20000, M=2048 to a few hundred MB.
"""
from typing import Callable, Optional, Tuple

import torch
from torch import Tensor

__all__ = [
    'furthest_point_sample', 'furthest_point_sample_with_dist',
    'gather_points', 'ball_query', 'grouping_operation', 'three_nn',
    'three_interpolate', 'knn', 'points_in_boxes_part', 'points_in_boxes_all'
]

#: Largest number of (query, point) pairs materialised at once.
CHUNK_NUMEL = 2**23
#: Initial min-distance of every point in the FPS kernels (``temp``).
FPS_INIT_DIST = 1e10
#: Initial heap distance of the knn kernel; farther points are never picked.
KNN_INIT_DIST = 1e10
#: Initial best distance of the three_nn kernel (a double in the kernel).
THREE_NN_INIT_DIST = 1e40


def _check_tensor(tensor: Tensor,
                  name: str,
                  ndim: int,
                  shape_doc: str,
                  last_dim: Optional[int] = None) -> None:
    """Raise a ValueError naming ``name`` if it is not a tensor of the given
    number of dimensions (and size of the last one)."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f'{name} must be a torch.Tensor of shape '
                        f'{shape_doc}, got {type(tensor).__name__}')
    if tensor.dim() != ndim or (last_dim is not None
                                and tensor.shape[-1] != last_dim):
        raise ValueError(f'{name} must have shape {shape_doc}, got '
                         f'{tuple(tensor.shape)}')


def _check_same_batch(name_a: str, tensor_a: Tensor, name_b: str,
                      tensor_b: Tensor) -> None:
    if tensor_a.shape[0] != tensor_b.shape[0]:
        raise ValueError(f'{name_a} and {name_b} must have the same batch '
                         f'size, got {tensor_a.shape[0]} and '
                         f'{tensor_b.shape[0]}')


def _rows_per_chunk(num_rows: int, row_numel: int) -> int:
    """How many query rows fit in one block of at most CHUNK_NUMEL pairs."""
    return max(1, min(num_rows, CHUNK_NUMEL // max(row_numel, 1)))


def _pairwise_sq_dist(query: Tensor, points: Tensor) -> Tensor:
    """Squared distances summed in the kernels' order.

    Args:
        query (Tensor): (B, M, 3) query points.
        points (Tensor): (B, N, 3) points.

    Returns:
        Tensor: (B, M, N) ``dx * dx + dy * dy + dz * dz`` in the input dtype.
    """
    diff = query[:, :, None, 0] - points[:, None, :, 0]
    dist2 = diff * diff
    for axis in (1, 2):
        diff = query[:, :, None, axis] - points[:, None, :, axis]
        dist2 += diff * diff
    return dist2


def _compare_dtype(dtype: torch.dtype) -> torch.dtype:
    """Kernels compare distances with float thresholds: promote to float."""
    return torch.promote_types(dtype, torch.float32)


def _argmax_like_fps(min_dist: Tensor) -> Tensor:
    """Index of the largest min-distance per batch row (first on ties).

    The kernels start their search with ``best = -1``, so a row whose values
    are all <= -1 (only possible with a user distance matrix) yields 0.
    """
    best = min_dist.argmax(dim=1)
    best_val = min_dist.gather(1, best[:, None])[:, 0]
    return torch.where(best_val > -1, best, torch.zeros_like(best))


def _fps_from_rows(distance_row: Callable[[Tensor], Tensor], batch_size: int,
                   num_points_total: int, num_points: int,
                   device: torch.device) -> Tensor:
    """Shared FPS loop; ``distance_row(last)`` gives the (B, N) float32
    distances from the last picked points (B, ) to every point."""
    indices = torch.zeros((batch_size, max(num_points, 0)),
                          dtype=torch.long,
                          device=device)
    if num_points <= 1:
        return indices.int()
    min_dist = torch.full((batch_size, num_points_total),
                          FPS_INIT_DIST,
                          dtype=torch.float32,
                          device=device)
    last = indices[:, 0]
    for j in range(1, num_points):
        torch.minimum(min_dist, distance_row(last), out=min_dist)
        last = _argmax_like_fps(min_dist)
        indices[:, j] = last
    return indices.int()


def furthest_point_sample(points_xyz: Tensor, num_points: int) -> Tensor:
    """Furthest point sampling on Euclidean distances (D-FPS).

    Starts at index 0; each step picks the point whose squared distance to
    the picked set is largest. Computed in float32 like the kernel.

    Args:
        points_xyz (Tensor): (B, N, 3) point coordinates.
        num_points (int): Number of points to sample.

    Returns:
        Tensor: (B, num_points) int32 indices of the sampled points.
    """
    _check_tensor(points_xyz, 'points_xyz', 3, '(B, N, 3)', 3)
    batch_size, num_total = points_xyz.shape[:2]
    if num_total == 0 and num_points > 0:
        raise ValueError('points_xyz has no points (N == 0), cannot sample '
                         f'{num_points} points')
    # (3, B, N): contiguous per-axis rows; the loop reuses two buffers
    coords = points_xyz.detach().float().permute(2, 0, 1).contiguous()
    batch = torch.arange(batch_size, device=coords.device)
    dist = coords.new_empty((batch_size, num_total))
    diff = torch.empty_like(dist)

    def distance_row(last: Tensor) -> Tensor:
        centre = coords[:, batch, last][..., None]
        torch.sub(coords[0], centre[0], out=diff)
        torch.mul(diff, diff, out=dist)
        for axis in (1, 2):
            torch.sub(coords[axis], centre[axis], out=diff)
            dist.add_(diff.mul_(diff))
        return dist

    return _fps_from_rows(distance_row, batch_size, num_total, num_points,
                          coords.device)


def furthest_point_sample_with_dist(points_dist: Tensor,
                                    num_points: int) -> Tensor:
    """Furthest point sampling on a given distance matrix (F-FPS).

    Args:
        points_dist (Tensor): (B, N, N) distance between each point pair
            (``PointsSampler`` passes squared feature distances).
        num_points (int): Number of points to sample.

    Returns:
        Tensor: (B, num_points) int32 indices of the sampled points.
    """
    _check_tensor(points_dist, 'points_dist', 3, '(B, N, N)')
    batch_size, num_total, num_cols = points_dist.shape
    if num_total != num_cols:
        raise ValueError('points_dist must be square, shape (B, N, N), got '
                         f'{tuple(points_dist.shape)}')
    if num_total == 0 and num_points > 0:
        raise ValueError('points_dist has no points (N == 0), cannot sample '
                         f'{num_points} points')
    dist = points_dist.detach().float()
    batch = torch.arange(batch_size, device=dist.device)

    def distance_row(last: Tensor) -> Tensor:
        return dist[batch, last]

    return _fps_from_rows(distance_row, batch_size, num_total, num_points,
                          dist.device)


def gather_points(features: Tensor, indices: Tensor) -> Tensor:
    """Gather point features by index (differentiable w.r.t. features).

    Args:
        features (Tensor): (B, C, N) features to gather.
        indices (Tensor): (B, M) int indices into N.

    Returns:
        Tensor: (B, C, M) gathered features.
    """
    _check_tensor(features, 'features', 3, '(B, C, N)')
    _check_tensor(indices, 'indices', 2, '(B, M)')
    _check_same_batch('features', features, 'indices', indices)
    batch_size, channels, _ = features.shape
    index = indices.long()[:, None, :].expand(batch_size, channels, -1)
    return torch.gather(features, 2, index)


def _check_batch_cnt(batch_cnt: Tensor, num_rows: int, name: str) -> Tensor:
    """Validate the per-sample counts of a stacked (N1 + N2 + ...) tensor.

    Returns:
        Tensor: (batch_size, ) int64 counts.
    """
    _check_tensor(batch_cnt, name, 1, '(batch_size, )')
    counts = batch_cnt.long()
    if int(counts.sum()) != num_rows or bool((counts < 0).any()):
        raise ValueError(f'{name} must hold non-negative counts summing to '
                         f'{num_rows} rows, got {counts.tolist()}')
    return counts


def grouping_operation(features: Tensor,
                       indices: Tensor,
                       features_batch_cnt: Optional[Tensor] = None,
                       indices_batch_cnt: Optional[Tensor] = None) -> Tensor:
    """Group point features by neighbourhood indices (differentiable w.r.t.
    features).

    Args:
        features (Tensor): (B, C, N), or stacked (N1 + N2 ..., C).
        indices (Tensor): (B, npoint, nsample) indices into N, or stacked
            (M1 + M2 ..., nsample) indices local to each sample's points.
        features_batch_cnt (Tensor, optional): (B, ) N1, N2, ... for the
            stacked mode.
        indices_batch_cnt (Tensor, optional): (B, ) M1, M2, ... for the
            stacked mode.

    Returns:
        Tensor: (B, C, npoint, nsample), or (M1 + M2 ..., C, nsample) in
        the stacked mode.
    """
    if (features_batch_cnt is None) != (indices_batch_cnt is None):
        raise ValueError('grouping_operation: give both features_batch_cnt '
                         'and indices_batch_cnt (stacked mode) or neither')
    if features_batch_cnt is not None:
        return _stacked_grouping(features, indices, features_batch_cnt,
                                 indices_batch_cnt)
    _check_tensor(features, 'features', 3, '(B, C, N)')
    _check_tensor(indices, 'indices', 3, '(B, npoint, nsample)')
    _check_same_batch('features', features, 'indices', indices)
    batch_size, channels, _ = features.shape
    _, num_centres, num_samples = indices.shape
    index = indices.long().reshape(batch_size, 1,
                                   -1).expand(batch_size, channels, -1)
    grouped = torch.gather(features, 2, index)
    return grouped.view(batch_size, channels, num_centres, num_samples)


def _stacked_grouping(features: Tensor, indices: Tensor,
                      features_batch_cnt: Tensor,
                      indices_batch_cnt: Tensor) -> Tensor:
    """Stacked-mode grouping: indices are local to each sample's points."""
    _check_tensor(features, 'features', 2, '(N1 + N2 ..., C)')
    _check_tensor(indices, 'indices', 2, '(M1 + M2 ..., nsample)')
    if len(features_batch_cnt) != len(indices_batch_cnt):
        raise ValueError('features_batch_cnt and indices_batch_cnt must have '
                         f'the same length, got {len(features_batch_cnt)} '
                         f'and {len(indices_batch_cnt)}')
    counts = _check_batch_cnt(features_batch_cnt, features.shape[0],
                              'features_batch_cnt').to(indices.device)
    row_counts = _check_batch_cnt(indices_batch_cnt, indices.shape[0],
                                  'indices_batch_cnt').to(indices.device)
    row_batch = torch.repeat_interleave(
        torch.arange(len(row_counts), device=indices.device), row_counts)
    starts = torch.cumsum(counts, 0) - counts
    local = indices.long()
    row_count = counts[row_batch][:, None]
    if bool(((local < 0) | (local >= row_count)).any()):
        raise ValueError('grouping_operation (stacked): indices must lie in '
                         '[0, N_b) of their own sample; replace the -1 of '
                         'empty balls before grouping')
    grouped = features[local + starts[row_batch][:, None]]
    return grouped.permute(0, 2, 1).contiguous()


def _first_hits(hit: Tensor, num_samples: int) -> Tensor:
    """mmcv ball-query slot filling for every row of ``hit`` (R, N).

    The first hit fills all slots, the following hits overwrite slots 1..,
    and at most ``num_samples`` hits are used; rows without a hit stay 0.

    Returns:
        Tensor: (R, num_samples) int64 indices.
    """
    rows, cols = hit.nonzero(as_tuple=True)  # row-major: hits in point order
    counts = torch.bincount(rows, minlength=hit.shape[0])
    rank = torch.arange(
        len(rows),
        device=hit.device) - (torch.cumsum(counts, 0) - counts)[rows]
    keep = rank < num_samples
    filled = torch.zeros((hit.shape[0], num_samples),
                         dtype=torch.long,
                         device=hit.device)
    filled[rows[keep], rank[keep]] = cols[keep]
    slots = torch.arange(num_samples, device=hit.device)
    return torch.where(slots >= counts[:, None], filled[:, :1], filled)


def _squared_radius(radius: float) -> Tensor:
    """The kernels square the radius in float32."""
    radius = torch.tensor(float(radius), dtype=torch.float32)
    return radius * radius


def ball_query(min_radius: float,
               max_radius: float,
               sample_num: int,
               xyz: Tensor,
               center_xyz: Tensor,
               xyz_batch_cnt: Optional[Tensor] = None,
               center_xyz_batch_cnt: Optional[Tensor] = None) -> Tensor:
    """Indices of the points in a spherical shell around every centre.

    A point counts if ``d2 == 0`` or ``min_radius**2 <= d2 <
    max_radius**2``; the first hit fills all slots, later hits overwrite
    slots 1.. in point order, the scan stops after ``sample_num`` hits and a
    centre without hits gets all zeros. The stacked mode (both batch counts
    given) uses ``d2 < max_radius**2`` only, ignores ``min_radius`` and
    marks an empty ball by -1 in slot 0, like mmcv.

    Args:
        min_radius (float): Inner radius of the shell.
        max_radius (float): Outer radius of the shell.
        sample_num (int): Number of indices per centre.
        xyz (Tensor): (B, N, 3) points, or stacked (N1 + N2 ..., 3).
        center_xyz (Tensor): (B, npoint, 3) centres, or stacked
            (M1 + M2 ..., 3).
        xyz_batch_cnt (Tensor, optional): (B, ) N1, N2, ... (stacked).
        center_xyz_batch_cnt (Tensor, optional): (B, ) M1, M2, ...
            (stacked).

    Returns:
        Tensor: (B, npoint, sample_num) int32 indices, or stacked
        (M1 + M2 ..., sample_num) indices local to each sample.
    """
    if not min_radius < max_radius:
        raise ValueError('ball_query needs min_radius < max_radius, got '
                         f'{min_radius} and {max_radius}')
    if xyz_batch_cnt is not None and center_xyz_batch_cnt is not None:
        return _stacked_ball_query(max_radius, sample_num, xyz, center_xyz,
                                   xyz_batch_cnt, center_xyz_batch_cnt)
    _check_tensor(xyz, 'xyz', 3, '(B, N, 3)', 3)
    _check_tensor(center_xyz, 'center_xyz', 3, '(B, npoint, 3)', 3)
    _check_same_batch('xyz', xyz, 'center_xyz', center_xyz)
    batch_size, num_points, _ = xyz.shape
    num_centres = center_xyz.shape[1]
    idx = xyz.new_zeros((batch_size, num_centres, sample_num),
                        dtype=torch.int32)
    if num_points == 0 or sample_num <= 0:
        return idx
    compare_dtype = _compare_dtype(xyz.dtype)
    min_r2 = _squared_radius(min_radius).to(xyz.device, compare_dtype)
    max_r2 = _squared_radius(max_radius).to(xyz.device, compare_dtype)
    xyz = xyz.detach()
    center_xyz = center_xyz.detach()
    step = _rows_per_chunk(num_centres, batch_size * num_points)
    for start in range(0, num_centres, step):
        dist2 = _pairwise_sq_dist(center_xyz[:, start:start + step], xyz)
        dist2_cmp = dist2.to(compare_dtype)
        hit = (dist2 == 0) | ((dist2_cmp >= min_r2) & (dist2_cmp < max_r2))
        block = _first_hits(hit.flatten(0, 1), sample_num)
        idx[:, start:start + step] = block.view(batch_size, -1,
                                                sample_num).int()
    return idx


def _stacked_ball_query(max_radius: float, sample_num: int, xyz: Tensor,
                        center_xyz: Tensor, xyz_batch_cnt: Tensor,
                        center_xyz_batch_cnt: Tensor) -> Tensor:
    """Stacked-mode ball query (mmcv's ``stack_ball_query`` kernel)."""
    _check_tensor(xyz, 'xyz', 2, '(N1 + N2 ..., 3)', 3)
    _check_tensor(center_xyz, 'center_xyz', 2, '(M1 + M2 ..., 3)', 3)
    if len(xyz_batch_cnt) != len(center_xyz_batch_cnt):
        raise ValueError('xyz_batch_cnt and center_xyz_batch_cnt must have '
                         f'the same length, got {len(xyz_batch_cnt)} and '
                         f'{len(center_xyz_batch_cnt)}')
    point_counts = _check_batch_cnt(xyz_batch_cnt, xyz.shape[0],
                                    'xyz_batch_cnt').tolist()
    centre_counts = _check_batch_cnt(center_xyz_batch_cnt, center_xyz.shape[0],
                                     'center_xyz_batch_cnt').tolist()
    idx = center_xyz.new_zeros((center_xyz.shape[0], sample_num),
                               dtype=torch.int32)
    if sample_num <= 0:
        return idx
    compare_dtype = _compare_dtype(xyz.dtype)
    max_r2 = _squared_radius(max_radius).to(xyz.device, compare_dtype)
    point_start = centre_start = 0
    for num_points, num_centres in zip(point_counts, centre_counts):
        points = xyz[point_start:point_start + num_points].detach()
        centres = center_xyz[centre_start:centre_start + num_centres]
        step = _rows_per_chunk(num_centres, num_points)
        for start in range(0, num_centres, step):
            rows = slice(centre_start + start,
                         centre_start + min(start + step, num_centres))
            if num_points == 0:
                idx[rows, 0] = -1
                continue
            dist2 = _pairwise_sq_dist(
                centres[None, start:start + step].detach(), points[None])[0]
            hit = dist2.to(compare_dtype) < max_r2
            block = _first_hits(hit, sample_num).int()  # (rows, nsample)
            block[:, 0] = torch.where(
                hit.any(dim=-1), block[:, 0], torch.full_like(block[:, 0], -1))
            idx[rows] = block
        point_start += num_points
        centre_start += num_centres
    return idx


def _k_smallest(dist2: Tensor, k: int, limit: float) -> Tuple[Tensor, Tensor]:
    """The k smallest values per row, ascending, ties by lowest index.

    Values that are not ``< limit`` (including inf and NaN) are never
    picked, like the kernels' sentinel-initialised searches; missing slots
    come back as (inf, index 0).

    Args:
        dist2 (Tensor): (R, N) distances.
        k (int): Number of neighbours.
        limit (float): Kernel sentinel; only values below it count.

    Returns:
        tuple[Tensor, Tensor]: (R, k) values and (R, k) int64 indices.
    """
    key = dist2.masked_fill(~(dist2 < limit), float('inf'))
    num_rows, num_points = key.shape
    k_eff = min(k, num_points)
    values = key.new_full((num_rows, k), float('inf'))
    positions = key.new_zeros((num_rows, k), dtype=torch.long)
    if k_eff == 0 or num_rows == 0:
        return values, positions
    chosen_val, chosen_pos = key.topk(k_eff, dim=-1, largest=False)
    kth = chosen_val.max(dim=-1, keepdim=True).values
    # rows where more values tie with the k-th than topk could keep
    tied_rows = ((key <= kth).sum(dim=-1) > k_eff).nonzero()[:, 0]
    if len(tied_rows):
        chosen_pos[tied_rows] = _lowest_index_ties(key[tied_rows],
                                                   kth[tied_rows], k_eff)
        chosen_val[tied_rows] = key[tied_rows].gather(-1,
                                                      chosen_pos[tied_rows])
    # order by (value, index): sort by index, then stable by value
    order = chosen_pos.argsort(dim=-1)
    chosen_pos, chosen_val = chosen_pos.gather(-1, order), chosen_val.gather(
        -1, order)
    order = chosen_val.argsort(dim=-1, stable=True)
    chosen_pos, chosen_val = chosen_pos.gather(-1, order), chosen_val.gather(
        -1, order)
    values[:, :k_eff] = chosen_val
    positions[:, :k_eff] = chosen_pos.masked_fill(torch.isinf(chosen_val), 0)
    return values, positions


def _lowest_index_ties(key: Tensor, kth: Tensor, k: int) -> Tensor:
    """Positions of the k smallest of each row of ``key`` (R, N), taking the
    lowest indices among the values equal to the k-th smallest ``kth``."""
    below = key < kth
    tied = key == kth
    needed = k - below.sum(dim=-1, keepdim=True)
    chosen = below | (tied & (tied.cumsum(dim=-1) <= needed))
    # exactly k per row; nonzero() lists them row-major
    return chosen.nonzero()[:, 1].view(key.shape[0], k)


def three_nn(target: Tensor, source: Tensor) -> Tuple[Tensor, Tensor]:
    """The three nearest source points of every target point.

    Args:
        target (Tensor): (B, N, 3) points that need neighbours.
        source (Tensor): (B, M, 3) candidate neighbours.

    Returns:
        tuple[Tensor, Tensor]: (B, N, 3) Euclidean distances (the sqrt of
        the kernel's squared distances, ascending) and (B, N, 3) int32
        indices into M. With fewer than 3 sources the missing slots hold
        index 0 and distance sqrt(1e40 in the input dtype) (inf in float32).
    """
    _check_tensor(target, 'target', 3, '(B, N, 3)', 3)
    _check_tensor(source, 'source', 3, '(B, M, 3)', 3)
    _check_same_batch('target', target, 'source', source)
    batch_size, num_targets, _ = target.shape
    num_sources = source.shape[1]
    dist2 = target.new_empty((batch_size, num_targets, 3))
    idx = target.new_empty((batch_size, num_targets, 3), dtype=torch.int32)
    target = target.detach()
    source = source.detach()
    step = _rows_per_chunk(num_targets, batch_size * num_sources)
    for start in range(0, num_targets, step):
        block = _pairwise_sq_dist(target[:, start:start + step], source)
        values, positions = _k_smallest(
            block.flatten(0, 1), 3, THREE_NN_INIT_DIST)
        values = values.view(batch_size, -1, 3)
        positions = positions.view(batch_size, -1, 3)
        # the kernel stores its 1e40 sentinel for missing neighbours
        values = values.masked_fill(
            torch.isinf(values),
            torch.tensor(THREE_NN_INIT_DIST, dtype=values.dtype).item())
        dist2[:, start:start + step] = values
        idx[:, start:start + step] = positions.int()
    return torch.sqrt(dist2), idx


def three_interpolate(features: Tensor, indices: Tensor,
                      weight: Tensor) -> Tensor:
    """Weighted sum of three neighbour features per target point.

    Differentiable w.r.t. ``features``; like mmcv no gradient flows to
    ``weight``.

    Args:
        features (Tensor): (B, C, M) source features.
        indices (Tensor): (B, N, 3) indices into M.
        weight (Tensor): (B, N, 3) interpolation weights.

    Returns:
        Tensor: (B, C, N) ``w0 * f[i0] + w1 * f[i1] + w2 * f[i2]``.
    """
    _check_tensor(features, 'features', 3, '(B, C, M)')
    _check_tensor(indices, 'indices', 3, '(B, N, 3)', 3)
    _check_tensor(weight, 'weight', 3, '(B, N, 3)', 3)
    _check_same_batch('features', features, 'indices', indices)
    if weight.shape != indices.shape:
        raise ValueError('weight must have the shape of indices (B, N, 3), '
                         f'got {tuple(weight.shape)} and '
                         f'{tuple(indices.shape)}')
    batch_size, channels, _ = features.shape
    index = indices.long()
    weight = weight.detach()
    output = None
    for j in range(3):
        neighbour = torch.gather(
            features, 2, index[:, None, :, j].expand(batch_size, channels, -1))
        term = neighbour * weight[:, None, :, j]
        output = term if output is None else output + term
    return output


def knn(k: int,
        xyz: Tensor,
        center_xyz: Optional[Tensor] = None,
        transposed: bool = False) -> Tensor:
    """The k nearest points of every centre, nearest first.

    Args:
        k (int): Number of neighbours, 0 < k < 100 as in mmcv.
        xyz (Tensor): (B, N, 3) points, (B, 3, N) if ``transposed``.
        center_xyz (Tensor, optional): (B, npoint, 3) centres, (B, 3,
            npoint) if ``transposed``. Defaults to ``xyz``.
        transposed (bool): Whether the inputs are channel-first.

    Returns:
        Tensor: (B, k, npoint) int32 indices into N; slots beyond the number
        of points within the kernel's 1e10 squared-distance limit are 0.
    """
    if not 0 < k < 100:
        raise ValueError(f'knn needs 0 < k < 100, got k={k}')
    if center_xyz is None:
        center_xyz = xyz
    layout = '(B, 3, N)' if transposed else '(B, N, 3)'
    _check_tensor(xyz, 'xyz', 3, layout)
    _check_tensor(center_xyz, 'center_xyz', 3, layout)
    if transposed:
        xyz = xyz.transpose(2, 1)
        center_xyz = center_xyz.transpose(2, 1)
    if xyz.shape[-1] != 3 or center_xyz.shape[-1] != 3:
        raise ValueError(f'knn: xyz and center_xyz must be {layout}, got '
                         f'{tuple(xyz.shape)} and {tuple(center_xyz.shape)} '
                         f'after transposed={transposed}')
    _check_same_batch('xyz', xyz, 'center_xyz', center_xyz)
    batch_size, num_centres, _ = center_xyz.shape
    num_points = xyz.shape[1]
    xyz = xyz.detach()
    center_xyz = center_xyz.detach()
    idx = center_xyz.new_zeros((batch_size, num_centres, k), dtype=torch.int32)
    step = _rows_per_chunk(num_centres, batch_size * num_points)
    for start in range(0, num_centres, step):
        block = _pairwise_sq_dist(center_xyz[:, start:start + step], xyz)
        _, positions = _k_smallest(block.flatten(0, 1), k, KNN_INIT_DIST)
        idx[:, start:start + step] = positions.view(batch_size, -1, k).int()
    return idx.transpose(2, 1).contiguous()


def _check_points_and_boxes(points: Tensor, boxes: Tensor) -> None:
    _check_tensor(points, 'points', 3, '(B, N, 3)', 3)
    _check_tensor(boxes, 'boxes', 3,
                  '(B, T, 7) [x, y, z_bottom, dx, dy, dz, rz]', 7)
    _check_same_batch('points', points, 'boxes', boxes)


def _points_in_boxes_mask(points: Tensor, boxes: Tensor) -> Tensor:
    """Membership of every point in every box, mmcv's inside test.

    A point is inside if ``|z - (cz + dz / 2)| <= dz / 2`` and, after
    rotating ``(x - cx, y - cy)`` by ``-rz``, strictly inside
    ``(-dx / 2, dx / 2) x (-dy / 2, dy / 2)``: top and bottom faces count,
    side faces do not.

    Args:
        points (Tensor): (B, N, 3) points.
        boxes (Tensor): (B, T, 7) boxes, z at the bottom centre.

    Returns:
        Tensor: (B, N, T) bool.
    """
    dtype = torch.promote_types(
        torch.promote_types(points.dtype, boxes.dtype), torch.float32)
    points = points.detach().to(dtype)
    boxes = boxes.detach().to(dtype)
    batch_size, num_points, _ = points.shape
    num_boxes = boxes.shape[1]
    centre_x, centre_y, bottom_z, size_x, size_y, size_z, yaw = (
        boxes[:, None, :, i] for i in range(7))
    centre_z = bottom_z + size_z / 2
    cos_a = torch.cos(-yaw)
    sin_a = torch.sin(-yaw)
    inside = points.new_zeros((batch_size, num_points, num_boxes),
                              dtype=torch.bool)
    step = _rows_per_chunk(num_points, batch_size * num_boxes)
    for start in range(0, num_points, step):
        block = points[:, start:start + step, :, None]
        x, y, z = block[:, :, 0], block[:, :, 1], block[:, :, 2]
        in_z = (z - centre_z).abs() <= size_z / 2
        shift_x = x - centre_x
        shift_y = y - centre_y
        local_x = shift_x * cos_a + shift_y * (-sin_a)
        local_y = shift_x * sin_a + shift_y * cos_a
        inside[:, start:start + step] = (
            in_z & (local_x > -size_x / 2) & (local_x < size_x / 2)
            & (local_y > -size_y / 2) & (local_y < size_y / 2))
    return inside


def points_in_boxes_part(points: Tensor, boxes: Tensor) -> Tensor:
    """Index of the first box containing each point.

    Args:
        points (Tensor): (B, N, 3) points in LiDAR/DEPTH coordinates.
        boxes (Tensor): (B, T, 7) [x, y, z, dx, dy, dz, rz], (x, y, z) the
            bottom centre.

    Returns:
        Tensor: (B, N) int32 box index, -1 for points outside every box.
    """
    _check_points_and_boxes(points, boxes)
    inside = _points_in_boxes_mask(points, boxes)
    if inside.shape[-1] == 0:
        return inside.new_full(inside.shape[:2], -1, dtype=torch.int32)
    first = inside.int().argmax(dim=-1)
    return torch.where(inside.any(dim=-1), first, torch.full_like(first,
                                                                  -1)).int()


def points_in_boxes_all(points: Tensor, boxes: Tensor) -> Tensor:
    """Membership of every point in every box.

    Args:
        points (Tensor): (B, N, 3) points in LiDAR/DEPTH coordinates.
        boxes (Tensor): (B, T, 7) [x, y, z, dx, dy, dz, rz], (x, y, z) the
            bottom centre.

    Returns:
        Tensor: (B, N, T) int32, 1 where the point lies in the box, else 0.
    """
    _check_points_and_boxes(points, boxes)
    return _points_in_boxes_mask(points, boxes).int()


def dynamic_scatter(feats: Tensor,
                    coors: Tensor,
                    reduce_type: str = 'max') -> Tuple[Tensor, Tensor]:
    """mmcv ``dynamic_scatter``: reduce the features (N, C) of the points
    sharing a voxel coordinate (N, ndim) -> ``(voxel_feats (M, C),
    voxel_coors (M, ndim))``.

    As the CUDA kernel: points with a negative coordinate (outside the
    voxel range) are dropped; the voxels are the unique coordinates in
    ascending (lexicographic) order; ``'max'``, ``'sum'`` or ``'mean'`` over
    each voxel's points. Differentiable w.r.t. ``feats``; for ``'max'``
    tied maxima share the gradient (the kernel gives it to one of them).
    """
    reductions = {'max': 'amax', 'sum': 'sum', 'mean': 'mean'}
    if reduce_type not in reductions:
        raise ValueError(f'reduce_type must be one of {sorted(reductions)}, '
                         f'got {reduce_type!r}')
    clean = coors.masked_fill((coors < 0).any(-1, keepdim=True), -1)
    voxel_coors, voxel_of_point = torch.unique(
        clean, dim=0, return_inverse=True)
    if voxel_coors.shape[0] and bool((voxel_coors[0] < 0).all()):
        voxel_coors = voxel_coors[1:]  # the dropped points' (-1, ..., -1)
        voxel_of_point = voxel_of_point - 1
    kept = voxel_of_point >= 0
    index = voxel_of_point[kept][:, None].expand(-1, feats.shape[1])
    voxel_feats = feats.new_zeros(voxel_coors.shape[0], feats.shape[1])
    voxel_feats = voxel_feats.scatter_reduce(
        0, index, feats[kept], reductions[reduce_type], include_self=False)
    return voxel_feats, voxel_coors
