"""GeminiFusion with 3-4 modalities: the DeLiVER branch's auxiliary hub,
``FusedMiT(num_modalities=M, hub=dict(type='AuxiliaryHub'),
fusion=dict(type='GeminiFusion'))``, in the backbone and the segmentor.
The hub's equations are tested in ``tests/fusion_math/test_geminifusion.py``.

The reference forward below is written from the DeLiVER branch's
behaviour as documented in docs/geminifusion.md: lists of per-modality
tensors in NCHW, one score net call per auxiliary modality, a pairwise
``torch.max`` reduction, the update of the auxiliaries in NCHW after the
stage norm. It uses the backbone's parameters but none of its hub code.
"""
import functools

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmseg.registry import MODELS

from projects.multimodal_seg.models.backbones.fused_mit import FusedMiT
from projects.multimodal_seg.models.fusion_layers import (AuxiliaryHub,
                                                          ModalityStreams)
from ..tools.reference_fixtures import TINY_MIT, make_nvlabs_mit
from ..utils import REPO_ROOT, seg_samples

TOKENFUSION_CONFIG = (f'{REPO_ROOT}/configs/tokenfusion/'
                      'tokenfusion_mit-tiny_1xb8-1k_synthetic-rgbd-64x64.py')
EXTRA = [
    dict(name=name, in_channels=3, mean=[0.] * 3, std=[255.] * 3)
    for name in ('event', 'lidar')
]
MODALITIES = ('rgb', 'depth', 'event', 'lidar')
GEMINI = dict(type='GeminiFusion', heads=8)
HUB = dict(type='AuxiliaryHub')


def hub_backbone(m, **kwargs):
    """A tiny GeminiFusion MiT, with the hub for m > 2 modalities."""
    torch.manual_seed(0)
    backbone = FusedMiT(
        num_modalities=m,
        embed_dims=8,
        num_layers=(2, 1, 1, 1),
        fusion=GEMINI,
        hub=HUB if m > 2 else None,
        drop_path_rate=0.,
        **kwargs)
    backbone.init_weights()
    # non-zero biases everywhere (zero-initialised by default)
    with torch.no_grad():
        for name, p in backbone.named_parameters():
            if name.endswith('bias'):
                p.add_(torch.randn_like(p) * 0.1)
    return backbone


# ------------------------------------------------------------- backbone
def reference_forward(backbone, x):
    """The hub backbone written out per modality (M = 2: no hub)."""
    m = backbone.num_modalities
    xs = list(x.chunk(m, dim=1))  # M x (B, 3, H, W)
    outs = []
    for s in range(4):
        embed = getattr(backbone, f'patch_embed{s + 1}')
        tokens = []
        for i, xi in enumerate(xs):
            y = F.conv2d(xi, embed.proj.weight, embed.proj.bias,
                         embed.proj.stride, embed.proj.padding)
            hw = y.shape[-2:]
            tokens.append(
                F.layer_norm(
                    y.flatten(2).transpose(1, 2), (y.shape[1], ),
                    embed.norm.weight[i], embed.norm.bias[i], 1e-6))
        b, n, c = tokens[0].shape
        if m > 2:
            nets = backbone.hub.score_predictors[s].score_nets
            ext = []
            for i, t in enumerate(tokens[1:]):
                score = nets[i](t.transpose(1, 2).reshape(b, c, *hw))
                ext.append(score.flatten(2).transpose(1, 2) * t + t)
            streams = [tokens[0], functools.reduce(torch.max, ext)]
        else:
            streams = tokens
        h = torch.cat(streams)
        for j, block in enumerate(getattr(backbone, f'block{s + 1}')):
            h = block(h, hw, backbone.fusion_layers.site(s, j))
        norm = getattr(backbone, f'norm{s + 1}')
        maps = [
            F.layer_norm(t, (c, ), norm.weight[i], norm.bias[i],
                         1e-6).transpose(1, 2).reshape(b, c, *hw)
            for i, t in enumerate(h.chunk(2))
        ]
        outs.append(torch.cat(maps))
        if m > 2:
            xs = [maps[0]] + [
                t.transpose(1, 2).reshape(b, c, *hw) + maps[1] for t in ext
            ]
        else:
            xs = maps
    return outs


@pytest.mark.parametrize('m', [2, 3, 4])
def test_backbone_equals_per_modality_reference(m):
    backbone = hub_backbone(m).eval()
    x = torch.randn(2, 3 * m, 64, 48)
    with torch.no_grad():
        feats = backbone(x)
        expected = reference_forward(backbone, x)
    assert backbone.fusion_loss() == {}
    assert [tuple(f.shape) for f in feats] == [(4, 8, 16, 12), (4, 16, 8, 6),
                                               (4, 40, 4, 3), (4, 64, 2, 2)]
    for f, e in zip(feats, expected):
        torch.testing.assert_close(f, e, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('m', [3, 4])
def test_hub_state_dict_layout(m):
    backbone = hub_backbone(m)
    assert isinstance(backbone.hub, AuxiliaryHub)
    assert backbone.num_streams == backbone.hub.num_streams == 2
    assert backbone.num_modalities == m
    # the blocks and the fusion layer run the two streams
    assert backbone.fusion_layers[0].num_streams == 2
    state = backbone.state_dict()
    hub = {k: tuple(v.shape) for k, v in state.items() if k.startswith('hub.')}
    dims = [8, 16, 40, 64]
    assert hub == {
        f'hub.score_predictors.{s}.score_nets.{i}.{k}': shape
        for s, c in enumerate(dims)
        for i in range(m)
        for k, shape in (('0.weight', (c, 1, 3, 3)), ('0.bias', (c, )),
                         ('1.weight', (1, c, 1, 1)), ('1.bias', (1, )))
    }
    for s, c in enumerate(dims, 1):
        assert state[f'patch_embed{s}.norm.weight'].shape == (m, c)
        assert state[f'norm{s}.weight'].shape == (2, c)
        assert state[f'block{s}.0.norm1.bias'].shape == (2, c)
        assert state[f'block{s}.0.norm2.weight'].shape == (2, c)
    assert state['block1.0.attn.norm.weight'].shape == (2, 8)
    assert not any('allocation' in k or 'score_predictors' in k
                   for k in state if k.startswith('fusion_layers.'))
    assert len(backbone.fusion_layers.blocks) == 5


def test_two_modalities_have_no_hub():
    backbone = hub_backbone(2)
    assert type(backbone.hub) is ModalityStreams
    assert backbone.num_streams == 2
    assert not any(k.startswith('hub.') for k in backbone.state_dict())
    for variant in ('attention', 'token'):
        token = FusedMiT(
            num_modalities=4,
            embed_dims=8,
            num_layers=(1, 1, 1, 1),
            fusion=dict(type='TokenExchange', variant=variant))
        assert token.num_streams == 4 and type(token.hub) is ModalityStreams
        assert token.norm1.weight.shape == (4, 8)
    # the hub aggregates the auxiliaries of at least 3 modalities
    with pytest.raises(ValueError, match='>= 3'):
        FusedMiT(
            num_modalities=2,
            embed_dims=8,
            num_layers=(1, 1, 1, 1),
            fusion=GEMINI,
            hub=HUB)


def test_gradients_reach_every_score_net():
    backbone = hub_backbone(4)
    feats = backbone(torch.randn(2, 12, 64, 64))
    sum((f * torch.randn_like(f)).sum() for f in feats).backward()
    for s, predictor in enumerate(backbone.hub.score_predictors):
        for i, net in enumerate(predictor.score_nets):
            for name, p in net.named_parameters():
                if i < 3:
                    assert p.grad is not None and p.grad.abs().sum() > 0, \
                        (s, i, name)
                else:  # the reference's unused net
                    assert p.grad is None and not p.requires_grad


def test_imagenet_init_of_a_four_modality_hub(tmp_path):
    nvlabs = make_nvlabs_mit()
    path = str(tmp_path / 'mit_tiny.pth')
    torch.save(nvlabs, path)
    torch.manual_seed(0)
    model = FusedMiT(
        num_modalities=4,
        fusion=GEMINI,
        hub=HUB,
        init_cfg=dict(type='Pretrained', checkpoint=path),
        **TINY_MIT)
    nets = {
        k: v.clone()
        for k, v in model.state_dict().items() if k.startswith('hub.')
    }
    model.init_weights()
    state = model.state_dict()
    for s in range(1, 5):
        for name, rows in ((f'patch_embed{s}.norm', 4), (f'norm{s}', 2),
                           (f'block{s}.0.norm1', 2), (f'block{s}.0.norm2', 2)):
            for kind in ('weight', 'bias'):
                value = state[f'{name}.{kind}']
                assert value.shape[0] == rows
                for row in value:
                    assert torch.equal(row, nvlabs[f'{name}.{kind}']), name
        assert torch.equal(state[f'patch_embed{s}.proj.weight'],
                           nvlabs[f'patch_embed{s}.proj.weight'])
    # the score nets are not in ImageNet files: they keep their init
    assert nets and all(torch.equal(state[k], v) for k, v in nets.items())
    assert model.fusion_layers[0].sites['2']['0'].k_noise.weight.std() > 0.5


# ------------------------------------------------------------ segmentor
def four_modality_segmentor(fusion=None, hub=None):
    """The TokenFusion demo model with 4 modalities; ``fusion`` replaces
    its TokenExchange layer."""
    cfg = Config.fromfile(TOKENFUSION_CONFIG)
    cfg.model.data_preprocessor.modalities = ['rgb', 'depth'] + EXTRA
    cfg.model.backbone.num_modalities = 4
    if fusion is not None:
        cfg.model.backbone.fusion = fusion
    cfg.model.backbone.hub = hub
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def train_step_and_predict(model, watch):
    model.train()
    optim = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-3)
    inputs = torch.randn(2, 12, 64, 64)
    losses = model.loss(inputs, seg_samples(2, modalities=MODALITIES))
    total = sum(v for k, v in losses.items() if 'loss' in k)
    optim.zero_grad()
    total.backward()
    before = watch().clone()
    optim.step()
    assert not torch.equal(before, watch())
    model.eval()
    with torch.no_grad():
        results = model.predict(inputs, seg_samples(2, modalities=MODALITIES))
    return losses, results


def test_four_modality_geminifusion_segmentor():
    model = four_modality_segmentor(fusion=GEMINI, hub=HUB)
    assert isinstance(model.backbone.hub, AuxiliaryHub)
    assert model.backbone.fusion_layers[0].heads == 8
    assert model.num_modalities == 4 and model.num_streams == 2
    assert model.modality_names == MODALITIES
    assert model.stream_names == ('rgb', 'aux')
    assert model.alpha.shape == (2, )
    assert model.out_channels == 5 * 3
    hub_net = model.backbone.hub.score_predictors[2].score_nets[1][1]
    losses, results = train_step_and_predict(model, lambda: hub_net.weight)
    assert {
        'decode.rgb.loss_ce', 'decode.aux.loss_ce', 'decode.ensemble.loss_ce'
    } <= set(losses)
    assert not any('depth' in k or 'sparsity' in k for k in losses)
    assert model.fusion_stats == {}
    for result in results:
        assert result.pred_sem_seg.shape == (64, 64)
        assert result.pred_sem_seg_rgb.shape == (64, 64)
        assert result.pred_sem_seg_aux.shape == (64, 64)
        assert 'pred_sem_seg_depth' not in result


def test_four_modality_tokenfusion_segmentor():
    model = four_modality_segmentor()
    assert model.num_streams == 4 and model.stream_names == MODALITIES
    assert model.alpha.shape == (4, )
    layer = model.backbone.fusion_layers[0]
    assert type(layer).__name__ == 'TokenExchange'
    # 4 streams: a group allocation per stage, saved with the model
    assert layer.allocation.shape == (4, 4, 32, 32)
    assert 'backbone.fusion_layers.0.allocation' in model.state_dict()
    losses, results = train_step_and_predict(
        model, lambda: layer.score_predictors['1'].fc4.weight)
    assert {f'decode.{m}.loss_ce' for m in MODALITIES} <= set(losses)
    assert 'loss_sparsity' in losses
    assert 'stage1/lidar/exchanged' in model.fusion_stats
    for result in results:
        for name in MODALITIES:
            assert result.get(f'pred_sem_seg_{name}').shape == (64, 64)
