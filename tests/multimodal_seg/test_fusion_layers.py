"""The fusion-layer machinery: building from configs, placement, which
fusion points a backbone hosts, several layers at once, the recorded loss
terms and statistics; TokenExchange on hand-made tensors."""
import pytest
import torch
import torch.nn as nn
from mmseg.registry import MODELS

from projects.multimodal_seg.models import (FusedMiT, FusedSwin, GeminiFusion,
                                            TokenExchange)
from projects.multimodal_seg.models.fusion_layers import (BaseFusionLayer,
                                                          FusionLayers)

STAGES = dict(num_streams=2, channels=[4, 8], depths=[2, 3])
TINY_MIT = dict(embed_dims=8, num_layers=[1, 1, 1, 1], num_heads=[1, 2, 4, 8])
TINY_SWIN = dict(
    embed_dims=8,
    depths=[2, 2, 2, 2],
    num_heads=[1, 2, 4, 8],
    window_size=2,
    drop_path_rate=0.)


def test_placement():
    every = TokenExchange(**STAGES)
    assert every.placement == {0: (0, 1), 1: (0, 1, 2)}
    assert every.placed_blocks == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]
    last = TokenExchange(**STAGES, blocks='last')
    assert last.placement == {0: (1, ), 1: (2, )}
    chosen = TokenExchange(**STAGES, stages=[1], blocks={1: [0, 2]})
    assert chosen.placement == {1: (0, 2)}
    assert chosen.acts_in(1, 2) and not chosen.acts_in(1, 1)
    assert not chosen.acts_in(0, 0)
    # a stage without blocks gets no score predictor
    assert sorted(chosen.score_predictors) == ['1']
    with pytest.raises(ValueError, match='stage widths'):
        TokenExchange(num_streams=2, channels=[4], depths=[1, 1])


def test_points_are_the_overridden_hooks():
    assert TokenExchange(**STAGES).points() == frozenset(
        ('begin_block', 'fuse_attention_output', 'end_block'))
    assert GeminiFusion(
        **STAGES, heads=2).points() == frozenset(('fuse_attention_heads', ))
    assert GeminiFusion(
        **STAGES, heads=2,
        point='fuse_attention_output').points() == frozenset(
            ('fuse_attention_output', ))
    with pytest.raises(ValueError, match='point'):
        GeminiFusion(**STAGES, point='end_block')


def test_a_backbone_refuses_a_layer_it_cannot_host():
    # TokenExchange scores the block input: FusedSwin hosts only the
    # attention output
    with pytest.raises(
            ValueError,
            match=r"TokenExchange needs the fusion point\(s\) \['begin_block'"
            r".*which FusedSwin does not host"):
        FusedSwin(fusion=dict(type='TokenExchange'), **TINY_SWIN)
    with pytest.raises(ValueError, match='fuse_attention_heads'):
        FusedSwin(fusion=dict(type='GeminiFusion', heads=2), **TINY_SWIN)
    swin = FusedSwin(
        fusion=dict(
            type='GeminiFusion', heads=2, point='fuse_attention_output'),
        **TINY_SWIN)
    assert len(swin.fusion_layers.blocks) == 8


class NotAFusionLayer(nn.Module):

    def __init__(self, **kwargs):
        super().__init__()


class ConstantLoss(BaseFusionLayer):

    def loss(self):
        return {'loss_sparsity': torch.tensor(1.)}


def test_fusion_layers_checks_types_and_loss_names():
    MODELS.register_module(module=NotAFusionLayer, force=True)
    MODELS.register_module(module=ConstantLoss, force=True)
    with pytest.raises(TypeError, match='not a BaseFusionLayer'):
        FusionLayers(
            dict(type='NotAFusionLayer'), 'Host', ('end_block', ), **STAGES)
    layers = FusionLayers(
        [dict(type='TokenExchange'),
         dict(type='ConstantLoss')], 'Host',
        ('begin_block', 'fuse_attention_output', 'end_block'), **STAGES)
    layers[0].scores = [torch.ones(2, 1, 3)]
    with pytest.raises(KeyError, match='two fusion layers .* loss_sparsity'):
        layers.loss()
    assert len(FusionLayers(None, 'Host', (), **STAGES)) == 0


def test_token_exchange_loss_and_statistics():
    layer = TokenExchange(
        **STAGES, sparsity_weight=0.5, sparsity_reduction='sum')
    assert layer.loss() == {} and layer.statistics(('a', 'b')) == {}
    layer.scores = [
        torch.tensor([[[0.01, 1.0]], [[0.5, 0.5]]]),
        torch.tensor([[[0.5]], [[0.001]]])
    ]
    layer.score_blocks = ['block1.0', 'block2.1']
    assert layer.loss()['loss_sparsity'].item() == pytest.approx(
        0.5 * (0.01 + 1 + 0.5 + 0.5 + 0.5 + 0.001))
    stats = layer.statistics(('rgb', 'depth'))
    assert stats['stage1/rgb/exchanged'] == 0.5
    assert stats['stage2/depth/exchanged'] == 1.0
    layer.begin_forward()
    assert layer.scores == [] and layer.loss() == {}
    with pytest.raises(ValueError, match='variant'):
        TokenExchange(**STAGES, variant='pixel')
    with pytest.raises(ValueError, match='sparsity_reduction'):
        TokenExchange(**STAGES, sparsity_reduction='max')


def test_token_exchange_with_three_streams_takes_the_allocated_token():
    """Three streams, hand-made: a zero score predictor output replaced by
    fixed scores, attention variant, on a 2 x 2 grid."""
    layer = TokenExchange(
        num_streams=3,
        channels=[8],
        depths=[1],
        allocation_pattern=2,
        threshold=0.02)
    allocation = layer.allocation[0].flatten(1)  # (3, 4) source per token
    scores = torch.full((3, 1, 4), 0.5)
    scores[0, 0, 1] = 0.  # stream 0 replaces token 1
    scores[2, 0, 3] = 0.01  # stream 2 replaces token 3
    layer.score_predictors['0'].forward = lambda x: scores
    x = torch.zeros(3 * 1, 4, 8)
    layer.begin_forward()
    layer.begin_block(0, 0, x, (2, 2))
    # (S*B, N, C): stream m, token n holds 10 * m + n in every channel
    attn = (10 * torch.arange(3.)[:, None] + torch.arange(4.)).view(
        3, 4, 1).expand(3, 4, 8)
    out = layer.fuse_attention_output(0, 0, attn)
    weighted = attn * scores.view(3, 4, 1)
    expected = weighted.clone()
    expected[0, 1] = weighted[allocation[0, 1], 1]
    expected[2, 3] = weighted[allocation[2, 3], 3]
    assert allocation[0, 1] != 0 and allocation[2, 3] != 2
    assert torch.equal(out, expected)


def test_several_layers_act_in_list_order():
    model = FusedMiT(
        num_modalities=2,
        fusion=[
            dict(type='TokenExchange', stages=[0]),
            dict(type='GeminiFusion', heads=2, stages=[3])
        ],
        **TINY_MIT)
    assert model.fusion_layers.blocks == [(0, 0), (3, 0)]
    site = model.fusion_layers.site(0, 0)
    assert [type(layer).__name__ for layer in site.layers] == ['TokenExchange']
    assert [
        type(layer).__name__ for layer in model.fusion_layers.site(3, 0).layers
    ] == ['GeminiFusion']
    assert model.fusion_layers.site(1, 0).layers == ()
    model.init_weights()
    features = model(torch.randn(1, 6, 64, 64))
    assert len(features) == 4
    assert set(model.fusion_loss()) == {'loss_sparsity'}
    keys = model.state_dict()
    assert 'fusion_layers.0.score_predictors.0.fc1.weight' in keys
    assert 'fusion_layers.1.sites.3.0.k_noise.weight' in keys
