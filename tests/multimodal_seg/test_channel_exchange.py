"""The ChannelExchange fusion layer in the fused MiT (TokenFusion
supplementary, Table 9): placement, the exchange after a LayerNorm, its
loss and statistics, combined with token exchange."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmseg.registry import MODELS

from projects.fusion_math.channel_exchange import channel_sparsity_loss
from projects.multimodal_seg.models import (ChannelExchange, FusedMiT,
                                            TokenExchange)
from ..utils import REPO_ROOT, seg_samples

CHANNEL_CONFIG = (
    f'{REPO_ROOT}/configs/tokenfusion/'
    'tokenfusion-channel_mit-tiny_1xb8-1k_synthetic-rgbd-64x64.py')
TINY = dict(
    arch='b0',
    embed_dims=8,
    num_layers=(1, 2, 1, 1),
    num_heads=(1, 2, 4, 8),
    drop_path_rate=0.)


def build(seed=0, **kwargs):
    torch.manual_seed(seed)
    model = FusedMiT(**TINY, **kwargs)
    model.init_weights()
    return model.eval()


def channel_layer(model):
    return next(
        layer for layer in model.fusion_layers
        if isinstance(layer, ChannelExchange))


@pytest.mark.parametrize('fusion', [
    dict(type='TokenExchange', variant='attention'),
    dict(type='TokenExchange', variant='token'),
    dict(type='GeminiFusion', heads=2), None
])
def test_adding_channel_exchange_adds_no_state_and_starts_neutral(fusion):
    layers = [] if fusion is None else [fusion]
    base = build(fusion=layers)
    on = build(fusion=layers + [dict(type='ChannelExchange')])
    assert list(on.state_dict()) == list(base.state_dict())
    x = torch.randn(2, 6, 64, 64)
    with torch.no_grad():
        feats = base(x)
        feats_on = on(x)
    # with the initial gammas = 1 > θ nothing is exchanged yet
    for a, b in zip(feats, feats_on):
        assert torch.equal(a, b)
    assert channel_layer(on).statistics(
        ('rgb', 'depth'))['channels/rgb/exchanged'] == 0


def test_exchange_placement_and_options():
    model = build(
        fusion=dict(type='ChannelExchange', norms=['norm2'], stages=[1, 3]))
    layer = channel_layer(model)
    assert layer.placement == {1: (0, 1), 3: (0, )}
    with torch.no_grad():
        model(torch.randn(1, 6, 64, 64))
    assert list(layer.gammas) == [(1, 0, 'norm2'), (1, 1, 'norm2'),
                                  (3, 0, 'norm2')]
    assert layer.gammas[(1, 0, 'norm2')] is model.block2[0].norm2.weight
    assert [tuple(g.shape)
            for g in layer.gammas.values()] == [(2, 16), (2, 16), (2, 64)]
    every = build(fusion=dict(type='ChannelExchange', threshold=0.1))
    with torch.no_grad():
        every(torch.randn(1, 6, 64, 64))
    assert len(channel_layer(every).gammas) == 2 * 5
    for bad in (dict(norms=('norm', )), dict(norms=()), dict(stages=(4, )),
                dict(foo=1)):
        with pytest.raises((ValueError, TypeError)):
            build(fusion=dict(type='ChannelExchange', **bad))
    with pytest.raises(ValueError, match='at least 2 streams'):
        build(fusion=dict(type='ChannelExchange'), num_modalities=1)
    shared = build(fusion=dict(type='ChannelExchange'), share_norms=True)
    with pytest.raises(ValueError, match='block1.0.norm1 has 1 scale'):
        shared(torch.randn(1, 6, 64, 64))


def test_zero_gamma_channel_carries_the_other_modality():
    """Modality 0's norm1 channel 3 of block1.0 is zeroed: after that norm
    it holds modality 1's normalised values, while without exchange it
    would be the bias (0); norm2 is not exchanged."""
    model = build(fusion=dict(type='ChannelExchange', norms=('norm1', )))
    norm = model.block1[0].norm1
    with torch.no_grad():
        norm.weight[0, 3] = 0.
    seen = {}
    norm.register_forward_hook(lambda mod, inp, out: seen.update(x=inp[0]))
    attn = model.block1[0].attn
    attn.register_forward_pre_hook(
        lambda mod, args: seen.update(fused=args[0]))
    with torch.no_grad():
        model(torch.randn(2, 6, 64, 64))
    x, out = seen['x'], seen['fused']
    b = x.shape[0] // 2
    rgb = F.layer_norm(x[:b], (8, ), norm.weight[0], norm.bias[0], norm.eps)
    depth = F.layer_norm(x[b:], (8, ), norm.weight[1], norm.bias[1], norm.eps)
    torch.testing.assert_close(out[:b, ..., 3], depth[..., 3])
    assert not torch.allclose(rgb[..., 3], depth[..., 3])
    torch.testing.assert_close(out[:b, ..., :3], rgb[..., :3])
    torch.testing.assert_close(out[b:], depth)


@pytest.mark.parametrize('token_fusion', [
    dict(type='TokenExchange', variant='attention'),
    dict(type='TokenExchange', variant='token'), None
])
def test_backward_reaches_the_gammas(token_fusion):
    layers = [dict(type='ChannelExchange', threshold=0.5, sparsity_weight=1.)]
    if token_fusion is not None:
        layers.insert(0, token_fusion)
    model = build(fusion=layers).train()
    with torch.no_grad():  # exchange some channels in both modalities
        for block in (*model.block1, *model.block2, *model.block3,
                      *model.block4):
            for norm in (block.norm1, block.norm2):
                norm.weight[0, ::3] = 0.1
                norm.weight[1, 1::3] = -0.2
    feats = model(torch.randn(2, 6, 64, 64))
    losses = model.fusion_loss()
    assert ('loss_sparsity' in losses) == (token_fusion is not None)
    gammas = list(channel_layer(model).gammas.values())
    torch.testing.assert_close(losses['loss_channel_sparsity'],
                               channel_sparsity_loss(gammas))
    (sum(f.square().mean() for f in feats) + sum(losses.values())).backward()
    for g in gammas:
        assert g.grad is not None and g.grad.abs().sum() > 0


# ------------------------------------------------------------ segmentor
def build_segmentor(fusion=None):
    cfg = Config.fromfile(CHANNEL_CONFIG)
    if fusion is not None:
        cfg.model.backbone.fusion = fusion
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def test_config_and_segmentor_loss():
    cfg = Config.fromfile(CHANNEL_CONFIG)
    token, channel = cfg.model.backbone.fusion
    assert token.type == 'TokenExchange' and channel.type == 'ChannelExchange'
    assert channel.sparsity_weight == 1e-3 and channel.threshold == 2e-2
    model = build_segmentor()
    losses = model.loss(torch.randn(2, 6, 64, 64), seg_samples(2))
    gammas = list(channel_layer(model.backbone).gammas.values())
    assert len(gammas) == 2 * 4  # norm1 + norm2 of the 4 one-block stages
    assert {'loss_sparsity', 'loss_channel_sparsity',
            'decode.rgb.loss_ce'} <= set(losses)
    expected = 1e-3 * sum(g.abs().sum() for g in gammas)
    torch.testing.assert_close(losses['loss_channel_sparsity'], expected)
    assert {
        'stage1/rgb/exchanged', 'channels/rgb/exchanged',
        'channels/depth/gamma_abs_mean'
    } <= set(model.fusion_stats)
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    for g in gammas:
        assert g.grad is not None and g.grad.abs().sum() > 0


def test_segmentor_channel_loss_off():
    model = build_segmentor(fusion=[
        dict(type='TokenExchange'),
        dict(type='ChannelExchange', sparsity_weight=0.)
    ])
    assert isinstance(model.backbone.fusion_layers[0], TokenExchange)
    losses = model.loss(torch.randn(1, 6, 64, 64), seg_samples(1))
    assert 'loss_channel_sparsity' not in losses
    assert 'channels/rgb/exchanged' in model.fusion_stats
    # the plain TokenFusion segmentor has no channel terms
    plain = build_segmentor(fusion=dict(type='TokenExchange'))
    losses = plain.loss(torch.randn(1, 6, 64, 64), seg_samples(1))
    assert 'loss_channel_sparsity' not in losses
    assert not any(k.startswith('channels/') for k in plain.fusion_stats)
