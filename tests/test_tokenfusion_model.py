"""TokenFusion: the fusion equations on hand-made tensors, the vectorised
modality layers, the fused MiT (M = 1 equivalence with mmseg's MiT, M = 2,
3, ablation switches), the segmentor and the staged schedule."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.structures import PixelData
from mmseg.models.backbones import MixVisionTransformer
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from projects.tokenfusion.engine import (RestartOptimizerHook, StagedPolyLR,
                                         staged_poly_factor)
from projects.tokenfusion.models import (ModalityConv2d, ModalityLayerNorm,
                                         ModalityLinear, TokenFusionMiT,
                                         mit_to_tokenfusion)
# yapf: disable
from projects.tokenfusion.models.token_fusion import (allocation_for_grid,
                                                      exchange_tokens,
                                                      fuse_attention_output,
                                                      fusion_statistics,
                                                      make_group_allocation,
                                                      scores_from_logits,
                                                      source_tokens,
                                                      sparsity_loss)
# yapf: enable
from projects.tokenfusion.models.tokenfusion_mit import FusedBlock
from .conftest import REPO_ROOT

TINY = dict(embed_dims=16, num_layers=[2, 1, 1, 1], num_heads=[1, 2, 4, 8])


# ------------------------------------------------------- fusion equations
def test_scores_are_softmax_channel_zero():
    logits = torch.tensor([[0., 0.], [2., -1.], [-30., 30.]])
    expected = torch.tensor([0.5, 1 / (1 + math.exp(-3)), 0.])
    torch.testing.assert_close(scores_from_logits(logits), expected)


def test_exchange_two_modalities_by_own_score():
    # x[m, b, n, c]: modality m, token n holds 10*m + n
    x = torch.tensor([[0., 1., 2., 3.], [10., 11., 12., 13.]]).view(2, 1, 4, 1)
    scores = torch.tensor([[0.5, 0.01, 0.02, 0.019], [0.001, 0.9, 0.5,
                                                      0.0]]).view(2, 1, 4)
    out = exchange_tokens(x, scores, threshold=0.02).view(2, 4)
    assert out.tolist() == [[0., 11., 2., 13.], [0., 11., 12., 3.]]


def test_fuse_attention_output_weights_then_exchanges():
    a = torch.tensor([[2., 4.], [6., 8.]]).view(2, 1, 2, 1)
    s = torch.tensor([[0.5, 0.01], [0.25, 0.5]]).view(2, 1, 2)
    out = fuse_attention_output(a, s, threshold=0.02).view(2, 2)
    # rgb token 1 (0.01 < θ) takes depth's weighted output 8 * 0.5 = 4
    assert out.tolist() == [[1.0, 4.0], [1.5, 4.0]]
    # the predictor gets gradients through the weighting: depth's token 1
    # is used twice (kept by depth, taken by rgb), rgb's token 1 not at all
    s = s.clone().requires_grad_()
    fuse_attention_output(a, s, 0.02).sum().backward()
    assert s.grad.view(2, 2).tolist() == [[2., 0.], [6., 16.]]


@pytest.mark.parametrize('m', [3, 4])
def test_group_allocation(m):
    p = 8
    gen = torch.Generator().manual_seed(0)
    allocation = make_group_allocation(m, p, gen)
    assert allocation.shape == (m, p, p)
    again = make_group_allocation(m, p, torch.Generator().manual_seed(0))
    assert torch.equal(allocation, again)
    for target in range(m):
        sources = allocation[target].flatten()
        assert (sources != target).all()
        counts = torch.bincount(sources, minlength=m)
        others = [c for s, c in enumerate(counts.tolist()) if s != target]
        assert max(others) - min(others) <= 1 and sum(others) == p * p
    # random split: different modalities use different position groups
    assert not torch.equal(allocation[0] == 1, allocation[2] == 1)
    grid = allocation_for_grid(allocation, 10, 13)
    assert grid.shape == (m, 130)
    assert grid.view(m, 10, 13)[:, 9, 12].tolist() == \
        allocation[:, 9 % p, 12 % p].tolist()


def test_exchange_with_allocation():
    m, n = 3, 5
    x = torch.arange(m * n, dtype=torch.float).view(m, 1, n, 1)
    allocation = torch.tensor([[1, 2, 1, 2, 1], [0, 2, 2, 0, 0],
                               [1, 0, 0, 1, 1]])
    src = source_tokens(x, allocation).view(m, n)
    for target in range(m):
        for pos in range(n):
            assert src[target, pos] == x[allocation[target, pos], 0, pos, 0]
    scores = torch.full((m, 1, n), 0.5)
    scores[1, 0, 2] = 0.
    out = exchange_tokens(x, scores, 0.02, allocation).view(m, n)
    assert out[1, 2] == x[2, 0, 2, 0] and out[0, 2] == x[0, 0, 2, 0]
    with pytest.raises(ValueError, match='need a group allocation'):
        source_tokens(x)


def test_sparsity_loss_reductions():
    scores = [torch.ones(2, 3, 4), torch.full((2, 3, 2), 0.5)]
    assert sparsity_loss(scores, 'sum').item() == 24 + 6
    assert sparsity_loss(scores, 'mean').item() == pytest.approx(30 / 36)
    with pytest.raises(ValueError):
        sparsity_loss(scores, 'max')


def test_fusion_statistics():
    scores = [
        torch.tensor([[[0.01, 0.5]], [[0.9, 0.9]]]),
        torch.tensor([[[0.001, 0.001]], [[0.9, 0.01]]]),
        torch.tensor([[[0.3]], [[0.3]]])
    ]
    stats = fusion_statistics(scores, ['block1.0', 'block1.1', 'block2.0'],
                              0.02, ['rgb', 'depth'])
    assert stats['stage1/rgb/exchanged'].item() == 0.75
    assert stats['stage1/depth/exchanged'].item() == 0.25
    assert stats['stage2/depth/exchanged'].item() == 0
    assert stats['stage1/rgb/score_max'].item() == 0.5
    assert stats['stage1/depth/score_min'].item() == pytest.approx(0.01)


# ------------------------------------------------- vectorised layers
def test_modality_layers_equal_per_modality_loops():
    torch.manual_seed(0)
    m, b = 3, 2
    x = torch.randn(m * b, 7, 8)
    norm = ModalityLayerNorm(m, 8)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    linear = ModalityLinear(m, 8, 5, shared=False)
    expected_norm, expected_linear = [], []
    for i, part in enumerate(x.split(b)):
        expected_norm.append(
            F.layer_norm(part, (8, ), norm.weight[i], norm.bias[i], 1e-6))
        expected_linear.append(
            F.linear(part, linear.weight[i], linear.bias[i]))
    torch.testing.assert_close(norm(x), torch.cat(expected_norm))
    torch.testing.assert_close(linear(x), torch.cat(expected_linear))

    images = torch.randn(m * b, 4, 9, 9)
    conv = ModalityConv2d(
        m, 4, 4, 3, stride=2, padding=1, groups=2, shared=False)
    expected = torch.cat([
        F.conv2d(part, conv.weight[i], conv.bias[i], 2, 1, 1, 2)
        for i, part in enumerate(images.split(b))
    ])
    torch.testing.assert_close(conv(images), expected)
    shared = ModalityConv2d(m, 4, 6, 3, padding=1)
    assert shared.weight.shape == (6, 4, 3, 3)
    assert ModalityLayerNorm(m, 8, shared=True).weight.shape == (1, 8)


# ------------------------------------------------------------- backbone
def test_single_modality_equals_mmseg_mit():
    torch.manual_seed(0)
    reference = MixVisionTransformer(in_channels=3, **TINY).eval()
    reference.init_weights()
    ours = TokenFusionMiT(num_modalities=1, **TINY).eval()
    ours.load_state_dict(
        mit_to_tokenfusion(reference.state_dict(), ours.state_dict()))
    assert ours.fused_blocks == [] and len(ours.score_predictor) == 0
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        expected = reference(x)
        features, scores = ours(x)
    assert scores == []
    for a, b in zip(expected, features):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize('m', [2, 3])
def test_fused_backbone_shapes_and_scores(m):
    model = TokenFusionMiT(num_modalities=m, **TINY)
    model.init_weights()
    x = torch.randn(2, 3 * m, 64, 64)
    features, scores = model(x)
    assert [f.shape
            for f in features] == [(2 * m, 16, 16, 16), (2 * m, 32, 8, 8),
                                   (2 * m, 64, 4, 4), (2 * m, 128, 2, 2)]
    assert model.fused_blocks == [
        'block1.0', 'block1.1', 'block2.0', 'block3.0', 'block4.0'
    ]
    assert [s.shape for s in scores] == [(m, 2, 256), (m, 2, 256), (m, 2, 64),
                                         (m, 2, 16), (m, 2, 4)]
    assert all(((s > 0) & (s < 1)).all() for s in scores)
    assert (m > 2) == (model.exchange_allocation is not None)
    if m > 2:
        assert 'exchange_allocation' in model.state_dict()
    # the modality split of the input: modality 1 alone changes rows B..2B
    x2 = x.clone()
    x2[:, 3:6] += 1
    with torch.no_grad():
        model.eval()
        a, _ = model(x)
        b, _ = model(x2)
    assert not torch.allclose(a[0][2:4], b[0][2:4])
    with pytest.raises(ValueError, match=f'expects {m} modalities'):
        model(torch.randn(1, 3 * m + 1, 64, 64))


def test_fusion_placement_options():
    last = TokenFusionMiT(
        num_modalities=2, fuse_stages=(1, 2), fuse_blocks='last', **TINY)
    assert last.fused_blocks == ['block2.0', 'block3.0']
    assert sorted(last.score_predictor) == ['1', '2']
    chosen = TokenFusionMiT(
        num_modalities=2, fuse_blocks={0: [1]}, fuse_stages=(0, ), **TINY)
    assert chosen.fused_blocks == ['block1.1']
    unshared = TokenFusionMiT(
        num_modalities=2,
        share_attn=False,
        share_mlp=False,
        share_norms=True,
        **TINY)
    block = unshared.block1[0]
    assert block.attn.q.weight.shape == (2, 16, 16)
    assert block.attn.sr.weight.shape == (2, 16, 16, 8, 8)
    assert block.mlp.dwconv.weight.shape == (2, 64, 1, 3, 3)
    assert block.norm1.weight.shape == (1, 16)
    assert unshared.patch_embed1.proj.weight.shape == (16, 3, 7, 7)
    unshared.init_weights()
    features, _ = unshared(torch.randn(1, 6, 32, 32))
    assert features[3].shape == (2, 128, 1, 1)


def fused_block_and_input(seed=0):
    torch.manual_seed(seed)
    block = FusedBlock(2, 16, 2, 2, 4, True, 0., 0., 0., True, True,
                       False).eval()
    for norm in (block.norm1, block.norm2, block.attn.norm):
        torch.nn.init.normal_(norm.weight)
    x = torch.randn(2 * 3, 16, 16)
    scores = torch.rand(2, 3, 16) * 0.05  # about 40 % below θ = 0.02
    return block, x, scores


def test_fused_block_attention_mode_matches_the_reference_equation():
    block, x, scores = fused_block_and_input()
    with torch.no_grad():
        out = block(x, (4, 4), scores, 'attention', 0.02)
        attn = block.attn(block.norm1(x), (4, 4)).view(2, 3, 16, 16)
        weighted = attn * scores[..., None]
        keep = (scores >= 0.02)[..., None]
        update = torch.where(keep, weighted, weighted.flip(0))
        mid = x + update.reshape(6, 16, 16)
        expected = mid + block.mlp(block.norm2(mid), (4, 4))
    assert 0 < (scores < 0.02).float().mean() < 1
    torch.testing.assert_close(out, expected)


def test_fused_block_token_mode_substitutes_whole_tokens():
    block, x, scores = fused_block_and_input(1)
    with torch.no_grad():
        out = block(x, (4, 4), scores, 'token', 0.02)
        attn = block.attn(block.norm1(x), (4, 4)).view(2, 3, 16, 16)
        mid = x + (attn * scores[..., None]).reshape(6, 16, 16)
        full = (mid + block.mlp(block.norm2(mid), (4, 4))).view(2, 3, 16, 16)
        keep = (scores >= 0.02)[..., None]
        expected = torch.where(keep, full, full.flip(0)).reshape(6, 16, 16)
    torch.testing.assert_close(out, expected)


# ------------------------------------------------------------ segmentor
def build_segmentor(**overrides):
    cfg = Config.fromfile(
        f'{REPO_ROOT}/configs/tokenfusion/'
        'tokenfusion_mit-tiny_1xb8-1k_synthetic-rgbd-64x64.py')
    cfg.model.update(overrides)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def samples(batch, size=64, classes=5, modalities=('rgb', 'depth')):
    """Data samples with random labels for a (batch, ..., size, size)
    input."""
    out = []
    for _ in range(batch):
        sample = SegDataSample(
            metainfo=dict(
                img_shape=(size, size),
                ori_shape=(size, size),
                pad_shape=(size, size),
                modalities=modalities,
                img_path='x.png'))
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, classes, (1, size, size)))
        out.append(sample)
    return out


def test_segmentor_losses_and_ensemble_gradients():
    model = build_segmentor()
    inputs = torch.randn(2, 6, 64, 64)
    losses = model.loss(inputs, samples(2))
    assert {
        'decode.rgb.loss_ce', 'decode.depth.loss_ce',
        'decode.ensemble.loss_ce', 'loss_sparsity', 'decode.rgb.acc_seg'
    } <= set(losses)
    assert set(model.fusion_stats) >= {
        'stage1/rgb/exchanged', 'stage4/depth/score_mean'
    }
    # the ensemble loss reaches alpha only
    losses['decode.ensemble.loss_ce'].backward()
    assert model.alpha.grad is not None and model.alpha.grad.abs().sum() > 0
    assert all(p.grad is None or not p.grad.any()
               for p in model.backbone.parameters())
    frozen = build_segmentor(train_alpha=False)
    assert not frozen.alpha.requires_grad


def test_segmentor_predicts_from_the_ensemble(tmp_path):
    model = build_segmentor().eval()
    with torch.no_grad():
        model.alpha.copy_(torch.tensor([2.0, -1.0]))
        inputs = torch.randn(2, 6, 64, 64)
        results = model.predict(inputs, samples(2))
        logits, _ = model.modality_logits(inputs)
    weights = torch.softmax(torch.tensor([2.0, -1.0]), 0)
    ensemble = F.interpolate(
        weights[0] * logits[0] + weights[1] * logits[1],
        size=(64, 64),
        mode='bilinear',
        align_corners=False)
    for i, result in enumerate(results):
        torch.testing.assert_close(
            result.seg_logits.data, ensemble[i], atol=1e-5, rtol=1e-5)
        assert torch.equal(result.pred_sem_seg.data[0], ensemble[i].argmax(0))
        for m, name in enumerate(('rgb', 'depth')):
            single = F.interpolate(
                logits[m, i:i + 1], size=(64, 64), mode='bilinear')[0]
            assert torch.equal(
                result.get(f'pred_sem_seg_{name}').data[0], single.argmax(0))


def test_segmentor_slide_inference():
    model = build_segmentor(
        test_cfg=dict(mode='slide', crop_size=(48, 48), stride=(32, 32)))
    model.eval()
    with torch.no_grad():
        results = model.predict(torch.randn(1, 6, 80, 96), samples(1, 80))
    assert results[0].pred_sem_seg.data.shape == (1, 80, 80)
    assert results[0].pred_sem_seg_depth.data.shape == (1, 80, 80)


# ------------------------------------------------------------- schedule
def test_staged_poly_factor_follows_the_reference():
    kw = dict(
        stage_iters=13200,
        stage_factors=(1, .5, .25),
        warmup_iters=1500,
        warmup_ratio=1e-6,
        poly_iters=40000,
        power=1.0)
    assert staged_poly_factor(0, **kw) == pytest.approx(1e-6)
    assert staged_poly_factor(750, **kw) == pytest.approx(0.5 + 0.5e-6)
    assert staged_poly_factor(1500, **kw) == pytest.approx(1 - 1500 / 40000)
    assert staged_poly_factor(13199, **kw) == pytest.approx(1 - 13199 / 4e4)
    assert staged_poly_factor(13200, **kw) == pytest.approx(0.5e-6)
    assert staged_poly_factor(26400 + 5000,
                              **kw) == pytest.approx(0.25 * (1 - 5000 / 40000))
    assert staged_poly_factor(10**6, **kw) == 0


def test_staged_lr_scheduler_and_optimizer_restart():
    param = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.AdamW([{
        'params': [param],
        'lr': 1.0
    }, {
        'params': [torch.nn.Parameter(torch.zeros(1))],
        'lr':
        10.0
    }])
    scheduler = StagedPolyLR(
        optimizer,
        stage_iters=10,
        stage_factors=(1, .5),
        warmup_iters=2,
        warmup_ratio=0.,
        poly_iters=20)
    lrs = []
    for step in range(14):
        lrs.append([g['lr'] for g in optimizer.param_groups])
        param.grad = torch.ones(2)
        optimizer.step()
        scheduler.step()
    assert lrs[0] == [0, 0] and lrs[1] == [0.5, 5.0]
    assert lrs[9][0] == pytest.approx(1 - 9 / 20)
    assert lrs[11][0] == pytest.approx(0.25) and lrs[11][1] == 2.5
    assert scheduler.stage_starts == [10]

    class Runner:
        iter = 10
        param_schedulers = [scheduler]
        optim_wrapper = type('W', (), {'optimizer': optimizer})()
        logger = type('L', (), {'info': staticmethod(lambda msg: None)})()

    assert optimizer.state  # Adam moments exist
    RestartOptimizerHook().before_train_iter(Runner, 0)
    assert not optimizer.state
