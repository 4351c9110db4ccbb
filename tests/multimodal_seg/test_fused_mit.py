"""The fused MiT: M = 1 equivalence with mmseg's MiT, M = 2 / 3 stacks,
the fusion points of a block, placement and sharing switches."""
import pytest
import torch
from mmseg.models.backbones import MixVisionTransformer
from mmseg.registry import MODELS

from projects.multimodal_seg.models.backbones.fused_mit import (FusedBlock,
                                                                FusedMiT)
from projects.multimodal_seg.models.backbones.mit_checkpoint import \
    mit_to_fused
from projects.multimodal_seg.models.fusion_layers import (BaseFusionLayer,
                                                          FusionSite,
                                                          TokenExchange)

TINY = dict(embed_dims=16, num_layers=[2, 1, 1, 1], num_heads=[1, 2, 4, 8])
TOKEN_EXCHANGE = dict(type='TokenExchange')


def test_single_modality_equals_mmseg_mit():
    torch.manual_seed(0)
    reference = MixVisionTransformer(in_channels=3, **TINY).eval()
    reference.init_weights()
    ours = FusedMiT(num_modalities=1, **TINY).eval()
    ours.load_state_dict(
        mit_to_fused(reference.state_dict(), ours.state_dict()))
    assert len(ours.fusion_layers) == 0 and ours.fusion_layers.blocks == []
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        expected = reference(x)
        features = ours(x)
    assert ours.fusion_loss() == {}
    for a, b in zip(expected, features):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize('m', [2, 3])
def test_fused_backbone_shapes_and_scores(m):
    model = FusedMiT(num_modalities=m, fusion=TOKEN_EXCHANGE, **TINY)
    model.init_weights()
    x = torch.randn(2, 3 * m, 64, 64)
    features = model(x)
    assert [f.shape
            for f in features] == [(2 * m, 16, 16, 16), (2 * m, 32, 8, 8),
                                   (2 * m, 64, 4, 4), (2 * m, 128, 2, 2)]
    exchange = model.fusion_layers[0]
    assert isinstance(exchange, TokenExchange)
    assert model.fusion_layers.blocks == [(0, 0), (0, 1), (1, 0), (2, 0),
                                          (3, 0)]
    assert exchange.score_blocks == exchange.block_names == [
        'block1.0', 'block1.1', 'block2.0', 'block3.0', 'block4.0'
    ]
    scores = exchange.scores
    assert [s.shape for s in scores] == [(m, 2, 256), (m, 2, 256), (m, 2, 64),
                                         (m, 2, 16), (m, 2, 4)]
    assert all(((s > 0) & (s < 1)).all() for s in scores)
    assert (m > 2) == (exchange.allocation is not None)
    assert (m > 2) == ('fusion_layers.0.allocation' in model.state_dict())
    # a second forward records anew instead of appending
    with torch.no_grad():
        model(x)
    assert len(exchange.scores) == 5
    # the modality split of the input: modality 1 alone changes rows B..2B
    x2 = x.clone()
    x2[:, 3:6] += 1
    with torch.no_grad():
        model.eval()
        a = model(x)
        b = model(x2)
    assert not torch.allclose(a[0][2:4], b[0][2:4])
    with pytest.raises(ValueError, match=f'expects {m} modalities'):
        model(torch.randn(1, 3 * m + 1, 64, 64))


def test_fusion_placement_and_sharing_options():
    last = FusedMiT(
        num_modalities=2,
        fusion=dict(type='TokenExchange', stages=(1, 2), blocks='last'),
        **TINY)
    assert last.fusion_layers[0].block_names == ['block2.0', 'block3.0']
    assert sorted(last.fusion_layers[0].score_predictors) == ['1', '2']
    chosen = FusedMiT(
        num_modalities=2,
        fusion=dict(type='TokenExchange', stages=(0, ), blocks={0: [1]}),
        **TINY)
    assert chosen.fusion_layers[0].block_names == ['block1.1']
    for bad in (dict(stages=(4, )), dict(blocks={0: [2]}),
                dict(blocks='first')):
        with pytest.raises(ValueError):
            FusedMiT(
                num_modalities=2,
                fusion=dict(type='TokenExchange', **bad),
                **TINY)
    unshared = FusedMiT(
        num_modalities=2,
        share_attn=False,
        share_mlp=False,
        share_norms=True,
        fusion=TOKEN_EXCHANGE,
        **TINY)
    block = unshared.block1[0]
    assert block.attn.q.weight.shape == (2, 16, 16)
    assert block.attn.sr.weight.shape == (2, 16, 16, 8, 8)
    assert block.mlp.dwconv.weight.shape == (2, 64, 1, 3, 3)
    assert block.norm1.weight.shape == (1, 16)
    assert unshared.patch_embed1.proj.weight.shape == (16, 3, 7, 7)
    unshared.init_weights()
    features = unshared(torch.randn(1, 6, 32, 32))
    assert features[3].shape == (2, 128, 1, 1)


def test_unknown_fusion_layer_and_arch_are_errors():
    with pytest.raises(KeyError, match='NoSuchFusion'):
        FusedMiT(num_modalities=2, fusion=dict(type='NoSuchFusion'), **TINY)
    with pytest.raises(ValueError, match='arch'):
        FusedMiT(arch='b9')
    with pytest.raises(ValueError, match='at least 2 streams'):
        FusedMiT(num_modalities=1, fusion=TOKEN_EXCHANGE, **TINY)


class RecordingFusion(BaseFusionLayer):
    """Records which fusion point is called, in which order, with what."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = []

    def begin_block(self, stage, block, x, hw):
        self.calls.append(('begin_block', stage, block, tuple(x.shape), hw))

    def fuse_normed(self, stage, block, name, y, norm):
        self.calls.append(('fuse_normed', stage, block, name))
        return y

    def fuse_attention_heads(self, stage, block, y):
        self.calls.append(('fuse_attention_heads', stage, block))
        return y

    def fuse_attention_output(self, stage, block, y):
        self.calls.append(('fuse_attention_output', stage, block))
        return y

    def end_block(self, stage, block, x):
        self.calls.append(('end_block', stage, block))
        return x


def test_a_new_fusion_layer_plugs_in_without_touching_the_backbone():
    MODELS.register_module(module=RecordingFusion, force=True)
    model = FusedMiT(
        num_modalities=2,
        fusion=dict(type='RecordingFusion', stages=(1, ), blocks='all'),
        **TINY).eval()
    layer = model.fusion_layers[0]
    with torch.no_grad():
        model(torch.randn(1, 6, 32, 32))
    # stage 1 (0-based) has one block on a 4 x 4 grid
    assert layer.calls == [
        ('begin_block', 1, 0, (2, 16, 32), (4, 4)),
        ('fuse_normed', 1, 0, 'norm1'),
        ('fuse_attention_heads', 1, 0),
        ('fuse_attention_output', 1, 0),
        ('fuse_normed', 1, 0, 'norm2'),
        ('end_block', 1, 0),
    ]
    assert layer.points() == frozenset(
        ('begin_block', 'fuse_normed', 'fuse_attention_heads',
         'fuse_attention_output', 'end_block'))


def fused_block_and_input(variant, seed=0):
    """One block of a stage with a TokenExchange layer whose predictor is
    replaced by fixed scores."""
    torch.manual_seed(seed)
    block = FusedBlock(2, 16, 2, 2, 4, True, 0., 0., 0., True, True,
                       False).eval()
    for norm in (block.norm1, block.norm2, block.attn.norm):
        torch.nn.init.normal_(norm.weight)
    x = torch.randn(2 * 3, 16, 16)
    scores = torch.rand(2, 3, 16) * 0.05  # about 40 % below θ = 0.02
    layer = TokenExchange(
        num_streams=2,
        channels=[16],
        depths=[1],
        threshold=0.02,
        variant=variant)
    layer.score_predictors['0'].forward = lambda tokens: scores
    layer.begin_forward()
    return block, x, scores, FusionSite([layer], 0, 0)


NO_FUSION = FusionSite([], 0, 0)


def test_fused_block_attention_mode_matches_the_reference_equation():
    block, x, scores, site = fused_block_and_input('attention')
    with torch.no_grad():
        out = block(x, (4, 4), site)
        attn = block.attn(block.norm1(x), (4, 4), NO_FUSION).view(2, 3, 16, 16)
        weighted = attn * scores[..., None]
        keep = (scores >= 0.02)[..., None]
        update = torch.where(keep, weighted, weighted.flip(0))
        mid = x + update.reshape(6, 16, 16)
        expected = mid + block.mlp(block.norm2(mid), (4, 4))
    assert 0 < (scores < 0.02).float().mean() < 1
    torch.testing.assert_close(out, expected)


def test_fused_block_token_mode_substitutes_whole_tokens():
    block, x, scores, site = fused_block_and_input('token', 1)
    with torch.no_grad():
        out = block(x, (4, 4), site)
        attn = block.attn(block.norm1(x), (4, 4), NO_FUSION).view(2, 3, 16, 16)
        mid = x + (attn * scores[..., None]).reshape(6, 16, 16)
        full = (mid + block.mlp(block.norm2(mid), (4, 4))).view(2, 3, 16, 16)
        keep = (scores >= 0.02)[..., None]
        expected = torch.where(keep, full, full.flip(0)).reshape(6, 16, 16)
    torch.testing.assert_close(out, expected)


def test_builds_in_a_process_left_in_another_registry_scope():
    # a process that built an mmdet3d model may keep mmdet3d's default
    # scope, where the hub and the fusion layers are unknown names
    from mmengine.registry import DefaultScope

    import projects.multimodal_det3d  # noqa: F401  (registers the scope)
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        model = FusedMiT(
            fusion=[TOKEN_EXCHANGE,
                    dict(type='GeminiFusion', heads=2)],
            hub=dict(type='ModalityStreams'),
            **TINY)
    assert [type(layer).__name__ for layer in model.fusion_layers] == \
        ['TokenExchange', 'GeminiFusion']
