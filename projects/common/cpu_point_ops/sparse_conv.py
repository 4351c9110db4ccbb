"""Pure-torch versions of mmcv 2.1.0's sparse-convolution kernels, which
exist for CUDA only (``get_indice_pairs is not implemented on CPU``,
``indice_conv_forward_impl: implementation for device cpu not found``), so
that mmdet3d's voxel models (SECOND's ``SparseEncoder`` in MVX-Net) run on a
CPU.

Each function takes the arguments of the mmcv function of the same name
(``mmcv.ops.sparse_ops.get_indice_pairs``,
``mmcv.ops.sparse_functional.indice_conv`` / ``indice_subm_conv`` /
``indice_inverse_conv``) and returns the same layout:

- ``get_indice_pairs`` -> ``(outids, indice_pairs, indice_pair_num)``:
  ``outids`` (N_out, 1 + ndim) int32 ``[batch, *coords]``; ``indice_pairs``
  (K, 2, N_in) int32, row 0 the input and row 1 the output index of the
  pairs of kernel offset k (row-major over the kernel, the order of the
  ``(*kernel, C_in, C_out)`` weight), -1 past ``indice_pair_num[k]``.
- An output site o of a regular convolution takes input site
  ``i = o * stride - padding + k * dilation`` through kernel offset k: the
  cross-correlation of ``torch.nn.functional.conv3d``; a submanifold
  convolution keeps the input sites and centres the kernel
  (``i = o + (k - ksize // 2) * dilation``).
- The convolutions gather, multiply by the offset's weight and add into the
  outputs (``index_add``); autograd gives the backward.

The output sites of a regular convolution are in ascending order of
``[batch, *coords]``; spconv's CUDA hash order differs, which changes only
the order of the rows (the sites and their features are the same).
Transposed (deconvolution) index pairs are not implemented.
"""
from typing import Sequence, Tuple

import torch
from torch import Tensor


def _per_dim(value, ndim: int) -> Tuple[int, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value)
    return (int(value), ) * ndim


def _conv_output_shape(spatial_shape, ksize, stride, padding, dilation):
    return tuple((size + 2 * pad - dil * (k - 1) - 1) // st + 1
                 for size, k, st, pad, dil in zip(spatial_shape, ksize, stride,
                                                  padding, dilation))


def _linear_index(coords: Tensor, shape: Sequence[int]) -> Tensor:
    """Row-major index of ``[batch, *coords]`` rows (int64)."""
    index = coords[:, 0].long()
    for d, size in enumerate(shape):
        index = index * size + coords[:, d + 1].long()
    return index


def _kernel_offsets(ksize: Sequence[int], device) -> Tensor:
    """(K, ndim) offsets, row-major (the last dimension fastest)."""
    grids = torch.meshgrid(
        *[torch.arange(k, device=device) for k in ksize], indexing='ij')
    return torch.stack([g.reshape(-1) for g in grids], dim=1)


def get_indice_pairs(indices: Tensor,
                     batch_size: int,
                     spatial_shape,
                     ksize=3,
                     stride=1,
                     padding=0,
                     dilation=1,
                     out_padding=0,
                     subm: bool = False,
                     transpose: bool = False,
                     grid=None):
    """Input / output site pairs of every kernel offset (see the module
    doc), for ``indices`` (N, 1 + ndim) int32 of a ``SparseConvTensor``."""
    if transpose:
        raise NotImplementedError(
            'get_indice_pairs on CPU: transposed sparse convolutions '
            '(SparseConvTranspose*d) have no CPU version; run them on CUDA')
    ndim = indices.shape[1] - 1
    ksize = _per_dim(ksize, ndim)
    stride = _per_dim(stride, ndim)
    dilation = _per_dim(dilation, ndim)
    spatial_shape = tuple(int(s) for s in spatial_shape)
    if subm:
        padding = tuple(k // 2 * d for k, d in zip(ksize, dilation))
        stride = (1, ) * ndim
        out_shape = spatial_shape
    else:
        padding = _per_dim(padding, ndim)
        out_shape = _conv_output_shape(spatial_shape, ksize, stride, padding,
                                       dilation)
    device = indices.device
    offsets = _kernel_offsets(ksize, device)  # (K, ndim)
    num_in, num_k = indices.shape[0], offsets.shape[0]
    coords = indices[:, 1:].long()  # (N, ndim)
    step = torch.tensor(stride, device=device)
    # o * stride = i + padding - k * dilation, for every (k, i)
    scaled = coords[None] + torch.tensor(padding, device=device) - \
        offsets[:, None] * torch.tensor(dilation, device=device)  # (K, N, d)
    out_coords = torch.div(scaled, step, rounding_mode='floor')
    valid = ((scaled % step) == 0).all(-1) & (out_coords >= 0).all(-1) & \
        (out_coords < torch.tensor(out_shape, device=device)).all(-1)
    batch = indices[:, 0].long().expand(num_k, -1)
    candidate = torch.cat([batch[..., None], out_coords], dim=-1)
    if subm:  # outputs are the inputs: look the candidates up among them
        outids = indices
        keys = _linear_index(indices, out_shape)
        order = keys.argsort()
        sorted_keys = keys[order]
        wanted = _linear_index(candidate.reshape(-1, ndim + 1),
                               out_shape).reshape(num_k, num_in)
        pos = torch.searchsorted(sorted_keys, wanted).clamp(max=num_in - 1)
        found = valid & (sorted_keys[pos] == wanted)
        out_index = order[pos]
    else:
        wanted = _linear_index(candidate[valid], out_shape)
        unique, inverse = torch.unique(wanted, return_inverse=True)
        out_index = torch.full((num_k, num_in),
                               -1,
                               dtype=torch.long,
                               device=device)
        out_index[valid] = inverse
        found = valid
        outids = torch.empty(
            unique.numel(), ndim + 1, dtype=torch.int32, device=device)
        rest = unique
        for d in range(ndim, 0, -1):
            size = out_shape[d - 1]
            outids[:, d] = (rest % size).int()
            rest = torch.div(rest, size, rounding_mode='floor')
        outids[:, 0] = rest.int()
    pairs = torch.full((num_k, 2, num_in),
                       -1,
                       dtype=torch.int32,
                       device=device)
    counts = found.sum(dim=1)
    inputs = torch.arange(num_in, device=device)
    for k in range(num_k):  # K is the kernel volume (27), not the points
        hit = found[k]
        n = int(counts[k])
        pairs[k, 0, :n] = inputs[hit].int()
        pairs[k, 1, :n] = out_index[k][hit].int()
    return outids, pairs, counts.int()


def _gather_scatter(features: Tensor, filters: Tensor, indice_pairs: Tensor,
                    indice_pair_num: Tensor, num_activate_out: int,
                    source_row: int) -> Tensor:
    weights = filters.reshape(-1, filters.shape[-2], filters.shape[-1])
    out = features.new_zeros(num_activate_out, weights.shape[-1])
    for k in range(weights.shape[0]):
        n = int(indice_pair_num[k])
        if n == 0:
            continue
        source = indice_pairs[k, source_row, :n].long()
        target = indice_pairs[k, 1 - source_row, :n].long()
        out = out.index_add(0, target, features[source] @ weights[k])
    return out


def indice_conv(features: Tensor, filters: Tensor, indice_pairs: Tensor,
                indice_pair_num: Tensor, num_activate_out: int) -> Tensor:
    """Sparse convolution: (N_in, C_in) -> (N_out, C_out) with ``filters``
    (*kernel, C_in, C_out)."""
    return _gather_scatter(features, filters, indice_pairs, indice_pair_num,
                           num_activate_out, 0)


def indice_subm_conv(features: Tensor, filters: Tensor, indice_pairs: Tensor,
                     indice_pair_num: Tensor, num_activate_out: int) -> Tensor:
    """Submanifold sparse convolution (the same gather-multiply-add)."""
    return _gather_scatter(features, filters, indice_pairs, indice_pair_num,
                           num_activate_out, 0)


def indice_inverse_conv(features: Tensor, filters: Tensor,
                        indice_pairs: Tensor, indice_pair_num: Tensor,
                        num_activate_out: int) -> Tensor:
    """The inverse of a sparse convolution with the pairs of its couple:
    features of the couple's output sites back to its input sites."""
    return _gather_scatter(features, filters, indice_pairs, indice_pair_num,
                           num_activate_out, 1)
