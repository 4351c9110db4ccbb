"""CPU voxel ops: sparse convolution (``cpu_point_ops.sparse_conv``): mmcv's
``SparseConv3d`` / ``SubMConv3d`` / ``SparseInverseConv3d`` on CPU tensors
equal dense ``conv3d`` / ``conv_transpose3d`` on the active sites, with the
same gradients, and mmdet3d's SECOND ``SparseEncoder`` (MVX-Net's middle
encoder) runs forward and backward; on CUDA the fallback equals mmcv's
kernels (skipped without a GPU); ``dynamic_scatter`` reduces each voxel's
points as a per-voxel loop does."""
import pytest
import torch
import torch.nn.functional as F

import projects.common.cpu_point_ops  # noqa: F401  (installs the dispatch)
from projects.common.cpu_point_ops import DISPATCHERS
from projects.common.cpu_point_ops import sparse_conv as cpu_sparse
from projects.common.cpu_point_ops import torch_ops

SHAPE = (6, 7, 8)


def sparse_input(batch=2, channels=3, density=0.15, seed=0, device='cpu'):
    """A random sparse voxel grid: (SparseConvTensor, dense (B, C, *SHAPE),
    active mask (B, *SHAPE))."""
    from mmcv.ops import SparseConvTensor
    generator = torch.Generator().manual_seed(seed)
    mask = torch.rand(batch, *SHAPE, generator=generator) < density
    dense = torch.zeros(batch, channels, *SHAPE)
    feats = torch.randn(int(mask.sum()), channels, generator=generator)
    dense.permute(0, 2, 3, 4, 1)[mask] = feats
    indices = mask.nonzero().int()
    tensor = SparseConvTensor(
        feats.to(device), indices.to(device), list(SHAPE), batch)
    return tensor, dense.to(device), mask.to(device)


def dense_weight(weight):
    """mmcv's (kz, ky, kx, C_in, C_out) -> conv3d's (C_out, C_in, k...)."""
    return weight.permute(4, 3, 0, 1, 2)


def test_regular_sparse_conv_is_dense_conv3d_with_its_gradients():
    from mmcv.ops import SparseConv3d
    torch.manual_seed(0)
    x, dense, _ = sparse_input()
    x.features.requires_grad_(True)
    conv = SparseConv3d(3, 5, 3, stride=2, padding=1, bias=False)
    y = conv(x)
    weight = conv.weight.detach().clone().requires_grad_(True)
    dense = dense.clone().requires_grad_(True)
    expected = F.conv3d(dense, dense_weight(weight), stride=2, padding=1)
    assert y.spatial_shape == [3, 4, 4]
    torch.testing.assert_close(y.dense(), expected, atol=1e-5, rtol=1e-5)
    # every output site is reached by some input (and only those are)
    reached = F.conv3d(
        (dense != 0).any(1, keepdim=True).float(),
        torch.ones(1, 1, 3, 3, 3),
        stride=2,
        padding=1) > 0
    assert y.features.shape[0] == int(reached.sum())
    upstream = torch.randn_like(expected)
    y.dense().backward(upstream)
    expected.backward(upstream)
    torch.testing.assert_close(
        conv.weight.grad, weight.grad, atol=1e-4, rtol=1e-4)
    mask = dense.detach().ne(0).any(1)
    torch.testing.assert_close(
        x.features.grad,
        dense.grad.permute(0, 2, 3, 4, 1)[mask],
        atol=1e-5,
        rtol=1e-5)


def test_submanifold_conv_keeps_the_sites():
    from mmcv.ops import SubMConv3d
    torch.manual_seed(1)
    x, dense, mask = sparse_input(seed=1)
    conv = SubMConv3d(3, 4, 3, bias=True, indice_key='subm1')
    y = conv(x)
    assert torch.equal(y.indices, x.indices)
    expected = F.conv3d(dense, dense_weight(conv.weight), conv.bias, padding=1)
    torch.testing.assert_close(
        y.dense(), expected * mask[:, None], atol=1e-5, rtol=1e-5)
    # dilation 2: the kernel centred, taps two voxels apart
    dilated = SubMConv3d(3, 4, 3, dilation=2, bias=False)
    expected = F.conv3d(
        dense, dense_weight(dilated.weight), padding=2, dilation=2)
    torch.testing.assert_close(
        dilated(x).dense(), expected * mask[:, None], atol=1e-5, rtol=1e-5)


def test_inverse_conv_is_the_transposed_conv_on_the_input_sites():
    from mmcv.ops import SparseConv3d, SparseInverseConv3d
    torch.manual_seed(2)
    x, _, mask = sparse_input(seed=2)
    down = SparseConv3d(3, 5, 3, stride=2, padding=1, indice_key='down')
    up = SparseInverseConv3d(5, 3, 3, indice_key='down', bias=False)
    y = down(x)
    z = up(y)
    assert torch.equal(z.indices, x.indices)
    expected = F.conv_transpose3d(
        y.dense(),
        up.weight.permute(3, 4, 0, 1, 2),
        stride=2,
        padding=1,
        output_padding=[(s + 1) % 2 for s in SHAPE])
    torch.testing.assert_close(
        z.dense(), expected * mask[:, None], atol=1e-5, rtol=1e-5)


def test_pairs_layout_and_unsupported_transpose():
    indices = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 1], [1, 2, 2, 2]],
                           dtype=torch.int32)
    outids, pairs, counts = cpu_sparse.get_indice_pairs(
        indices, 2, [3, 3, 3], 3, 1, 0, 1, 0, subm=True)
    assert torch.equal(outids, indices)
    assert pairs.shape == (27, 2, 3) and pairs.dtype == torch.int32
    assert counts.dtype == torch.int32
    centre = 13
    assert counts[centre] == 3  # every site reads itself
    assert pairs[centre, 0].tolist() == pairs[centre, 1].tolist() == [0, 1, 2]
    # offset (1, 1, 2): input = output + (0, 0, 1), so 0 <- 1 only
    assert counts[14] == 1 and pairs[14, :, 0].tolist() == [1, 0]
    assert (pairs[14, :, 1:] == -1).all()
    with pytest.raises(NotImplementedError, match='transposed'):
        cpu_sparse.get_indice_pairs(
            indices, 2, [3, 3, 3], 3, 2, 1, 1, 1, transpose=True)


def test_second_sparse_encoder_runs_on_cpu():
    from mmdet3d.registry import MODELS
    from mmengine.registry import DefaultScope
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        encoder = MODELS.build(
            dict(
                type='SparseEncoder',
                in_channels=4,
                sparse_shape=[41, 64, 64],
                order=('conv', 'norm', 'act')))
    coors = torch.unique(
        torch.stack([
            torch.randint(0, 2, (400, )),
            torch.randint(0, 41, (400, )),
            torch.randint(0, 64, (400, )),
            torch.randint(0, 64, (400, ))
        ], 1),
        dim=0).int()
    feats = torch.randn(coors.shape[0], 4, requires_grad=True)
    out = encoder(feats, coors, 2)
    assert out.shape == (2, 256, 64 // 8, 64 // 8)  # (C * D) x BEV
    out.sum().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0


needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason='compares with the CUDA kernels')


@needs_cuda
@pytest.mark.parametrize('subm', [False, True])
def test_fallback_matches_the_cuda_kernels(subm):
    x, _, _ = sparse_input(batch=2, channels=8, density=0.3, device='cuda')
    args = (x.indices, 2, list(SHAPE), 3, 1 if subm else 2, 1, 1, 0, subm)
    kernel = DISPATCHERS['get_indice_pairs'].original(*args)
    ours = cpu_sparse.get_indice_pairs(*(a.cpu() if torch.is_tensor(a) else a
                                         for a in args))
    # the same output sites (CUDA keeps them in hash order)
    assert sorted(map(tuple, kernel[0].cpu().tolist())) == sorted(
        map(tuple, ours[0].tolist()))
    assert torch.equal(kernel[2].cpu(), ours[2])
    weight = torch.randn(3, 3, 3, 8, 16, device='cuda')
    name = 'indice_subm_conv' if subm else 'indice_conv'
    expected = DISPATCHERS[name].original(x.features, weight, kernel[1],
                                          kernel[2], kernel[0].shape[0])
    result = getattr(cpu_sparse, name)(x.features.cpu(), weight.cpu(), ours[1],
                                       ours[2], ours[0].shape[0])
    # compare site by site
    order = {tuple(s): i for i, s in enumerate(ours[0].tolist())}
    rows = [order[tuple(s)] for s in kernel[0].cpu().tolist()]
    torch.testing.assert_close(
        expected.cpu(), result[rows], atol=1e-4, rtol=1e-4)


# ------------------------------------------------- dynamic voxel scatter
@pytest.mark.parametrize('reduce_type', ['max', 'sum', 'mean'])
def test_dynamic_scatter_reduces_each_voxel(reduce_type):
    from mmcv.ops import DynamicScatter
    generator = torch.Generator().manual_seed(3)
    coors = torch.randint(0, 3, (200, 3), generator=generator).int()
    coors[::17, 1] = -1  # outside the voxel range: dropped
    feats = torch.randn(200, 5, generator=generator, requires_grad=True)
    voxel_feats, voxel_coors = DynamicScatter(
        [1, 1, 1], [0, 0, 0, 3, 3, 3], reduce_type == 'mean')(feats, coors) \
        if reduce_type != 'sum' else \
        torch_ops.dynamic_scatter(feats, coors, 'sum')
    kept = (coors >= 0).all(1)
    expected_coors = torch.unique(coors[kept], dim=0)
    assert torch.equal(voxel_coors, expected_coors)
    assert voxel_coors.dtype == torch.int32
    reduce = {
        'max': lambda f: f.max(0)[0],
        'sum': lambda f: f.sum(0),
        'mean': lambda f: f.mean(0)
    }[reduce_type]
    expected = torch.stack(
        [reduce(feats[kept & (coors == c).all(1)]) for c in expected_coors])
    torch.testing.assert_close(voxel_feats, expected)
    upstream = torch.randn_like(voxel_feats)
    (grad, ) = torch.autograd.grad((voxel_feats * upstream).sum(), feats)
    (expected_grad, ) = torch.autograd.grad((expected * upstream).sum(), feats)
    torch.testing.assert_close(grad, expected_grad)
    assert grad[~kept].abs().sum() == 0
    with pytest.raises(ValueError, match='reduce_type'):
        torch_ops.dynamic_scatter(feats, coors, 'min')
