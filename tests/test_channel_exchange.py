"""CEN-style channel exchange on the fused MiT's LayerNorms (TokenFusion
supplementary, Table 9)."""
import pytest
import torch
from mmengine.config import Config
from mmseg.registry import MODELS

from projects.tokenfusion.models import (ModalityLayerNorm, TokenFusionMiT,
                                         channel_exchange,
                                         channel_exchange_statistics,
                                         channel_sparsity_loss,
                                         exchanged_channels)
from .conftest import REPO_ROOT
from .test_tokenfusion_model import samples

CHANNEL_CONFIG = (
    f'{REPO_ROOT}/configs/tokenfusion/'
    'tokenfusion-channel_mit-tiny_1xb8-1k_synthetic-rgbd-64x64.py')
TINY = dict(
    arch='b0',
    embed_dims=8,
    num_layers=(1, 2, 1, 1),
    num_heads=(1, 2, 4, 8),
    drop_path_rate=0.)


# ------------------------------------------------------------ equations
def test_channel_exchange_two_modalities_by_hand():
    # x: (M=2, B=1, N=2, C=3)
    x = torch.tensor([[[[1., 2., 3.], [4., 5., 6.]]],
                      [[[10., 20., 30.], [40., 50., 60.]]]])
    gammas = torch.tensor([[1.0, 0.01, -0.5], [0.019, 0.5, -0.001]])
    out = channel_exchange(x, gammas, 0.02)
    # modality 0 takes channel 1 (|0.01| < θ) from modality 1;
    # modality 1 takes channels 0 and 2 (|γ| < θ, sign ignored)
    expected = torch.tensor([[[[1., 20., 3.], [4., 50., 6.]]],
                             [[[1., 20., 3.], [4., 50., 6.]]]])
    assert torch.equal(out, expected)
    assert torch.equal(
        exchanged_channels(gammas, 0.02),
        torch.tensor([[False, True, False], [True, False, True]]))
    # |γ| == θ is kept (CEN: bn >= threshold keeps)
    assert torch.equal(channel_exchange(x, torch.full((2, 3), 0.02), 0.02), x)


def test_channel_exchange_three_modalities_mean_of_others():
    # x: (M=3, B=1, C=2)
    x = torch.tensor([[[1., 2.]], [[4., 8.]], [[16., 32.]]])
    gammas = torch.tensor([[0., 1.], [1., 0.], [0., 0.]])
    out = channel_exchange(x, gammas, 0.02)
    expected = torch.tensor([[[(4 + 16) / 2, 2.]], [[4., (2 + 32) / 2]],
                             [[(1 + 4) / 2, (2 + 8) / 2]]])
    torch.testing.assert_close(out, expected)
    # one modality: nothing to exchange
    assert torch.equal(channel_exchange(x[:1], gammas[:1], 0.02), x[:1])
    with pytest.raises(ValueError):
        channel_exchange(x, gammas[:2], 0.02)


def test_channel_sparsity_loss_and_statistics():
    g1 = torch.tensor([[1., -2.], [0.5, 0.]])
    g2 = torch.tensor([[-0.25, 0.01, 3.], [0., 0., 1.]])
    assert channel_sparsity_loss(
        [g1, g2]).item() == pytest.approx(1 + 2 + 0.5 + 0.25 + 0.01 + 3 + 1)
    stats = channel_exchange_statistics([g1, g2], 0.02, ('rgb', 'depth'))
    assert stats['channels/rgb/exchanged'].item() == pytest.approx(1 / 5)
    assert stats['channels/depth/exchanged'].item() == pytest.approx(3 / 5)
    assert stats['channels/rgb/gamma_abs_mean'].item() == pytest.approx(6.26 /
                                                                        5)
    with pytest.raises(ValueError):
        channel_sparsity_loss([])


def test_modality_layer_norm_exchanges_after_the_affine():
    torch.manual_seed(0)
    plain = ModalityLayerNorm(2, 4)
    norm = ModalityLayerNorm(2, 4, exchange_threshold=0.02)
    with torch.no_grad():
        plain.weight.copy_(torch.randn(2, 4))
        plain.weight[0, 1] = 0.
        plain.bias.copy_(torch.randn(2, 4))
    norm.load_state_dict(plain.state_dict())
    x = torch.randn(2 * 3, 5, 4)
    ref = plain(x).reshape(2, 3, 5, 4)
    out = norm(x).reshape(2, 3, 5, 4)
    # channel 1 of modality 0 carries modality 1's normalised values
    assert torch.equal(out[0, ..., 1], ref[1, ..., 1])
    assert torch.equal(out[0, ..., [0, 2, 3]], ref[0, ..., [0, 2, 3]])
    assert torch.equal(out[1], ref[1])
    with pytest.raises(ValueError):
        ModalityLayerNorm(2, 4, shared=True, exchange_threshold=0.02)


# ------------------------------------------------------------ backbone
def build(seed=0, **kwargs):
    torch.manual_seed(seed)
    model = TokenFusionMiT(**TINY, **kwargs)
    model.init_weights()
    return model.eval()


@pytest.mark.parametrize('fusion', ['attention', 'token', 'geminifusion'])
def test_switch_off_is_unchanged(fusion):
    extra = dict(fusion_heads=2) if fusion == 'geminifusion' else {}
    base = build(fusion=fusion, **extra)
    off = build(fusion=fusion, channel_exchange=None, **extra)
    on = build(fusion=fusion, channel_exchange=dict(), **extra)
    keys = list(base.state_dict())
    assert list(off.state_dict()) == keys == list(on.state_dict())
    assert [n for n, _ in on.named_buffers()] == \
        [n for n, _ in base.named_buffers()]
    assert base.channel_gammas() == [] and base.channel_exchange_norms == []
    x = torch.randn(2, 6, 64, 64)
    with torch.no_grad():
        feats, scores = base(x)
        feats_off, scores_off = off(x)
    for a, b in zip(feats + scores, feats_off + scores_off):
        assert torch.equal(a, b)
    # with init gammas = 1 > θ nothing is exchanged yet
    with torch.no_grad():
        feats_on, _ = on(x)
    for a, b in zip(feats, feats_on):
        assert torch.equal(a, b)


def test_backbone_exchange_placement_and_options():
    model = build(channel_exchange=dict(norms=['norm2'], stages=[1, 3]))
    assert model.channel_exchange_norms == [
        'block2.0.norm2', 'block2.1.norm2', 'block4.0.norm2'
    ]
    assert model.block2[0].norm2.exchange_threshold == 2e-2
    assert model.block2[0].norm1.exchange_threshold is None
    assert model.norm2.exchange_threshold is None
    assert model.patch_embed1.norm.exchange_threshold is None
    assert [tuple(g.shape)
            for g in model.channel_gammas()] == [(2, 16), (2, 16), (2, 64)]
    assert model.channel_gammas()[0] is model.block2[0].norm2.weight
    every = build(channel_exchange=dict(threshold=0.1))
    assert len(every.channel_exchange_norms) == 2 * 5
    assert every.channel_exchange_threshold == 0.1
    for bad in (dict(norms=('norm', )), dict(stages=(4, )), dict(foo=1)):
        with pytest.raises(ValueError):
            build(channel_exchange=bad)
    with pytest.raises(ValueError):
        build(channel_exchange=dict(), share_norms=True)
    with pytest.raises(ValueError):
        build(channel_exchange=dict(), num_modalities=1)


def test_zero_gamma_channel_carries_the_other_modality():
    """Modality 0's norm1 channel 3 of block1.0 is zeroed: after that norm
    (exchange on) it holds modality 1's normalised values, while without
    exchange it would be the bias (0)."""
    model = build(channel_exchange=dict(norms=('norm1', )))
    norm = model.block1[0].norm1
    with torch.no_grad():
        norm.weight[0, 3] = 0.
    seen = {}
    norm.register_forward_hook(
        lambda mod, inp, out: seen.update(inp=inp[0], out=out))
    with torch.no_grad():
        model(torch.randn(2, 6, 64, 64))
    x, out = seen['inp'], seen['out']
    b = x.shape[0] // 2
    ln = torch.nn.functional.layer_norm
    rgb = ln(x[:b], (8, ), norm.weight[0], norm.bias[0], norm.eps)
    depth = ln(x[b:], (8, ), norm.weight[1], norm.bias[1], norm.eps)
    torch.testing.assert_close(out[:b, ..., 3], depth[..., 3])
    assert not torch.allclose(rgb[..., 3], depth[..., 3])
    torch.testing.assert_close(out[:b, ..., :3], rgb[..., :3])
    torch.testing.assert_close(out[b:], depth)


@pytest.mark.parametrize('fusion,fuse_stages', [('attention', (0, 1, 2, 3)),
                                                ('token', (0, 1, 2, 3)),
                                                ('attention', ())])
def test_backbone_backward_reaches_gammas(fusion, fuse_stages):
    model = build(
        fusion=fusion,
        fuse_stages=fuse_stages,
        channel_exchange=dict(threshold=0.5)).train()
    with torch.no_grad():  # exchange some channels in both modalities
        for g in model.channel_gammas():
            g[0, ::3] = 0.1
            g[1, 1::3] = -0.2
    feats, scores = model(torch.randn(2, 6, 64, 64))
    assert bool(scores) == bool(fuse_stages)
    (sum(f.square().mean() for f in feats) +
     channel_sparsity_loss(model.channel_gammas())).backward()
    for g in model.channel_gammas():
        assert g.grad is not None and g.grad.abs().sum() > 0


# ------------------------------------------------------------ segmentor
def build_segmentor(**overrides):
    cfg = Config.fromfile(CHANNEL_CONFIG)
    cfg.model.update(overrides)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def test_config_and_segmentor_loss():
    cfg = Config.fromfile(CHANNEL_CONFIG)
    assert cfg.model.channel_sparsity_weight == 1e-3
    assert cfg.model.backbone.channel_exchange.threshold == 2e-2
    model = build_segmentor()
    gammas = model.backbone.channel_gammas()
    assert len(gammas) == 2 * 4  # norm1 + norm2 of the 4 one-block stages
    losses = model.loss(torch.randn(2, 6, 64, 64), samples(2))
    assert {'loss_sparsity', 'loss_channel_sparsity',
            'decode.rgb.loss_ce'} <= set(losses)
    expected = 1e-3 * sum(g.abs().sum() for g in gammas)
    torch.testing.assert_close(losses['loss_channel_sparsity'],
                               expected.detach())
    assert {
        'stage1/rgb/exchanged', 'channels/rgb/exchanged',
        'channels/depth/gamma_abs_mean'
    } <= set(model.fusion_stats)
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    for g in gammas:
        assert g.grad is not None and g.grad.abs().sum() > 0


def test_segmentor_channel_loss_off_and_errors():
    model = build_segmentor(channel_sparsity_weight=0.)
    losses = model.loss(torch.randn(1, 6, 64, 64), samples(1))
    assert 'loss_channel_sparsity' not in losses
    assert 'channels/rgb/exchanged' in model.fusion_stats
    # λ2 > 0 without channel exchange in the backbone
    cfg = Config.fromfile(CHANNEL_CONFIG)
    cfg.model.backbone.channel_exchange = None
    with pytest.raises(ValueError):
        MODELS.build(cfg.model)
    # the plain TokenFusion segmentor has no channel terms
    cfg.model.channel_sparsity_weight = 0.
    plain = MODELS.build(cfg.model)
    losses = plain.loss(torch.randn(1, 6, 64, 64), samples(1))
    assert 'loss_channel_sparsity' not in losses
    assert not any(k.startswith('channels/') for k in plain.fusion_stats)
