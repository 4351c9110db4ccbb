"""GeminiFusion with 3-4 modalities: the DeLiVER branch's auxiliary hub in
``TokenFusionMiT(fusion='geminifusion', num_modalities=M)``.

The reference forward below is written from the DeLiVER branch's
description (reference doc A5.3): lists of per-modality tensors in NCHW,
one score net call per auxiliary modality, a pairwise ``torch.max``
reduction, the update of the auxiliaries in NCHW after the stage norm.
It uses the backbone's parameters but none of its hub code.
"""
import functools

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmseg.registry import MODELS

from projects.tokenfusion.models import TokenFusionMiT
from projects.tokenfusion.models.gemini_fusion import (HubScorePredictor,
                                                       hub_aggregate,
                                                       hub_scores, hub_update)
from .conftest import REPO_ROOT
from .test_tokenfusion_model import samples

TOKENFUSION_CONFIG = (f'{REPO_ROOT}/configs/tokenfusion/'
                      'tokenfusion_mit-tiny_1xb8-1k_synthetic-rgbd-64x64.py')
EXTRA = [
    dict(name=name, in_channels=3, mean=[0.] * 3, std=[255.] * 3)
    for name in ('event', 'lidar')
]
MODALITIES = ('rgb', 'depth', 'event', 'lidar')


def hub_backbone(m, **kwargs):
    torch.manual_seed(0)
    backbone = TokenFusionMiT(
        num_modalities=m,
        embed_dims=8,
        num_layers=(2, 1, 1, 1),
        fusion='geminifusion',
        drop_path_rate=0.,
        **kwargs)
    backbone.init_weights()
    # non-zero biases everywhere (zero-initialised by default)
    with torch.no_grad():
        for name, p in backbone.named_parameters():
            if name.endswith('bias'):
                p.add_(torch.randn_like(p) * 0.1)
    return backbone


# ------------------------------------------------------- hub equations
def test_scores_on_hand_made_tensors():
    # A = 2 auxiliaries, B = 1, 2x2 grid, C = 2
    aux = torch.arange(16.).reshape(2, 1, 4, 2) / 10 - 0.5
    dw_w = torch.zeros(2, 2, 1, 3, 3)
    dw_w[:, :, 0, 1, 1] = torch.tensor([[1., 2.], [-1., 0.5]])  # centre tap
    dw_b = torch.tensor([[0.1, 0.], [0., -0.2]])
    pw_w = torch.tensor([[1., -1.], [2., 3.]]).reshape(2, 1, 2, 1, 1)
    pw_b = torch.tensor([[0.3], [-0.4]])
    scores = hub_scores(aux, (2, 2), dw_w, dw_b, pw_w, pw_b)
    assert scores.shape == (2, 1, 4, 1)
    x = aux[:, 0]  # (A, N, C)
    expected = torch.stack([
        torch.sigmoid(0.3 + 1 * (x[0, :, 0] + 0.1) - 1 * (2 * x[0, :, 1])),
        torch.sigmoid(-0.4 + 2 * (-x[1, :, 0]) + 3 * (0.5 * x[1, :, 1] - 0.2))
    ])
    torch.testing.assert_close(scores[:, 0, :, 0], expected)


def test_scores_follow_the_row_major_token_grid():
    # a depthwise tap on the left neighbour: token (h, w) sees (h, w - 1)
    aux = torch.tensor([1., 2., 3., 4., 5., 6.]).reshape(1, 1, 6, 1)
    dw_w = torch.zeros(1, 1, 1, 3, 3)
    dw_w[0, 0, 0, 1, 0] = 1.
    scores = hub_scores(aux, (2, 3), dw_w, torch.zeros(1, 1),
                        torch.ones(1, 1, 1, 1, 1), torch.zeros(1, 1))
    grid = torch.tensor([[0., 1., 2.], [0., 4., 5.]])
    torch.testing.assert_close(scores.flatten(), grid.flatten().sigmoid())


def test_aggregation_and_update_on_hand_made_tensors():
    aux = torch.tensor([[1., -2., 4.], [3., 0.5, -1.]]).reshape(2, 1, 1, 3)
    scores = torch.tensor([0.5, 0.]).reshape(2, 1, 1, 1)
    scaled, stream = hub_aggregate(aux, scores)
    # x * s + x: 1.5 x for the first, x for the second auxiliary
    torch.testing.assert_close(scaled.flatten(),
                               torch.tensor([1.5, -3., 6., 3., 0.5, -1.]))
    torch.testing.assert_close(stream.flatten(), torch.tensor([3., 0.5, 6.]))
    assert stream.shape == (1, 1, 3)
    updated = hub_update(scaled, torch.tensor([10., 20., 30.]).view(1, 1, 3))
    torch.testing.assert_close(updated.flatten(),
                               torch.tensor([11.5, 17., 36., 13., 20.5, 29.]))


def test_predictor_equals_one_call_per_score_net():
    torch.manual_seed(0)
    predictor = HubScorePredictor(4, 8)
    aux = torch.randn(3, 2, 6 * 5, 8)
    scaled, stream = predictor(aux, (6, 5))
    expected = []
    for i in range(3):
        nchw = aux[i].transpose(1, 2).reshape(2, 8, 6, 5)
        s = predictor.score_nets[i](nchw).flatten(2).transpose(1, 2)
        expected.append(aux[i] * s + aux[i])
    torch.testing.assert_close(scaled, torch.stack(expected))
    torch.testing.assert_close(stream, functools.reduce(torch.max, expected))


def test_predictor_layout_and_init():
    predictor = HubScorePredictor(3, 16)
    shapes = {k: tuple(v.shape) for k, v in predictor.state_dict().items()}
    assert shapes == {
        f'score_nets.{i}.{k}': shape
        for i in range(3)
        for k, shape in (('0.weight', (16, 1, 3, 3)), ('0.bias', (16, )),
                         ('1.weight', (1, 16, 1, 1)), ('1.bias', (1, )))
    }
    assert isinstance(predictor.score_nets[0][2], torch.nn.Sigmoid)
    # the unused last net is frozen, the others train
    assert [p.requires_grad
            for p in predictor.score_nets[2].parameters()] == [False] * 4
    assert all(p.requires_grad for p in predictor.score_nets[0].parameters())
    # N(0, 2 / fan_out), fan_out = k * k * out (not divided by groups)
    assert not predictor.score_nets[0][0].bias.any()
    assert predictor.score_nets[0][1].weight.std() > 0.5  # sqrt(2 / 1)
    assert predictor.score_nets[0][0].weight.std() < 0.2  # sqrt(2 / 144)
    with pytest.raises(ValueError, match='>= 3 modalities'):
        HubScorePredictor(2, 16)
    with pytest.raises(ValueError, match='2 auxiliary modalities expected'):
        predictor(torch.randn(3, 1, 4, 16), (2, 2))


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
            nets = backbone.extra_score_predictor[s].score_nets
            ext = []
            for i, t in enumerate(tokens[1:]):
                score = nets[i](t.transpose(1, 2).reshape(b, c, *hw))
                ext.append(score.flatten(2).transpose(1, 2) * t + t)
            streams = [tokens[0], functools.reduce(torch.max, ext)]
        else:
            streams = tokens
        h = torch.cat(streams)
        for block in getattr(backbone, f'block{s + 1}'):
            h = block(h, hw)
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
        feats, scores = backbone(x)
        expected = reference_forward(backbone, x)
    assert scores == []
    assert [tuple(f.shape) for f in feats] == [(4, 8, 16, 12), (4, 16, 8, 6),
                                               (4, 40, 4, 3), (4, 64, 2, 2)]
    for f, e in zip(feats, expected):
        torch.testing.assert_close(f, e, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('m', [3, 4])
def test_hub_state_dict_layout(m):
    backbone = hub_backbone(m)
    assert backbone.hub and backbone.num_streams == 2
    assert backbone.num_modalities == m
    state = backbone.state_dict()
    hub = {k: tuple(v.shape) for k, v in state.items() if 'extra' in k}
    dims = [8, 16, 40, 64]
    assert hub == {
        f'extra_score_predictor.{s}.score_nets.{i}.{k}': shape
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
    assert 'exchange_allocation' not in state
    assert len(backbone.gemini_blocks) == 5


def test_two_modalities_have_no_hub():
    backbone = hub_backbone(2)
    assert not backbone.hub and backbone.num_streams == 2
    assert not any('extra' in k for k in backbone.state_dict())
    for fusion in ('attention', 'token'):
        token = TokenFusionMiT(
            num_modalities=4,
            embed_dims=8,
            num_layers=(1, 1, 1, 1),
            fusion=fusion)
        assert token.num_streams == 4 and not token.hub
        assert token.norm1.weight.shape == (4, 8)


def test_gradients_reach_every_score_net():
    backbone = hub_backbone(4)
    feats, _ = backbone(torch.randn(2, 12, 64, 64))
    sum((f * torch.randn_like(f)).sum() for f in feats).backward()
    for s, predictor in enumerate(backbone.extra_score_predictor):
        for i, net in enumerate(predictor.score_nets):
            for name, p in net.named_parameters():
                if i < 3:
                    assert p.grad is not None and p.grad.abs().sum() > 0, \
                        (s, i, name)
                else:  # the reference's unused net
                    assert p.grad is None and not p.requires_grad


def test_imagenet_init_of_a_four_modality_hub(tmp_path):
    from .test_tokenfusion_checkpoints import TINY_MIT, make_nvlabs_mit
    nvlabs = make_nvlabs_mit()
    path = str(tmp_path / 'mit_tiny.pth')
    torch.save(nvlabs, path)
    torch.manual_seed(0)
    model = TokenFusionMiT(
        num_modalities=4,
        fusion='geminifusion',
        init_cfg=dict(type='Pretrained', checkpoint=path),
        **TINY_MIT)
    nets = {
        k: v.clone()
        for k, v in model.state_dict().items() if 'extra' in k
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
    assert model.block3[0].attn.gemini.k_noise.weight.std() > 0.5


# ------------------------------------------------------------ segmentor
def four_modality_segmentor(**backbone):
    cfg = Config.fromfile(TOKENFUSION_CONFIG)
    cfg.model.data_preprocessor.modalities = ['rgb', 'depth'] + EXTRA
    cfg.model.backbone.update(num_modalities=4, **backbone)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def train_step_and_predict(model, watch):
    model.train()
    optim = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-3)
    inputs = torch.randn(2, 12, 64, 64)
    losses = model.loss(inputs, samples(2, modalities=MODALITIES))
    total = sum(v for k, v in losses.items() if 'loss' in k)
    optim.zero_grad()
    total.backward()
    before = watch().clone()
    optim.step()
    assert not torch.equal(before, watch())
    model.eval()
    with torch.no_grad():
        results = model.predict(inputs, samples(2, modalities=MODALITIES))
    return losses, results


def test_four_modality_geminifusion_segmentor():
    model = four_modality_segmentor(fusion='geminifusion', fusion_heads=8)
    assert model.num_modalities == 4 and model.num_streams == 2
    assert model.modality_names == MODALITIES
    assert model.stream_names == ('rgb', 'aux')
    assert model.alpha.shape == (2, )
    assert model.out_channels == 5 * 3
    hub_net = model.backbone.extra_score_predictor[2].score_nets[1][1]
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
    losses, results = train_step_and_predict(
        model, lambda: model.backbone.score_predictor['1'].fc4.weight)
    assert {f'decode.{m}.loss_ce' for m in MODALITIES} <= set(losses)
    assert 'loss_sparsity' in losses
    assert 'stage1/lidar/exchanged' in model.fusion_stats
    for result in results:
        for name in MODALITIES:
            assert result.get(f'pred_sem_seg_{name}').shape == (64, 64)
