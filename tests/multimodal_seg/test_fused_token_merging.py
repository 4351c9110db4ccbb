"""Token merging inside the fused MiT: one merge map for all streams, the
fusion layers on the merged and still aligned tokens, copy-back before the
residual add, and ratio 0 bit-identical for TokenFusion and GeminiFusion."""
import pytest
import torch
from mmseg.registry import MODELS

from projects.fusion_math import token_merging as merging
from projects.fusion_math.token_exchange import fuse_attention_output
from projects.multimodal_seg.models.backbones.fused_mit import FusedMiT
from projects.multimodal_seg.models.fusion_layers import (BaseFusionLayer,
                                                          TokenExchange)

TINY = dict(embed_dims=16, num_layers=[1, 1, 2, 1], num_heads=[1, 2, 4, 8])
FUSIONS = {
    'tokenfusion': dict(type='TokenExchange'),
    'geminifusion': dict(type='GeminiFusion', heads=2),
}


def backbone(fusion, token_merge=None, m=2, seed=0):
    torch.manual_seed(seed)
    model = FusedMiT(
        num_modalities=m, fusion=fusion, token_merge=token_merge, **TINY)
    model.init_weights()
    return model.eval()


@pytest.mark.parametrize('name', sorted(FUSIONS))
def test_ratio_zero_is_bit_identical_and_checkpoints_load(name):
    plain = backbone(FUSIONS[name])
    zero = backbone(FUSIONS[name], [dict(ratio=0.)] * 4, seed=1)
    merged = backbone(
        FUSIONS[name],
        [None, dict(ratio=0.5)] + [dict(ratio=0.5, merge_mlp=True)] * 2,
        seed=1)
    # no new parameters: the unmerged checkpoint loads strictly
    zero.load_state_dict(plain.state_dict())
    merged.load_state_dict(plain.state_dict())
    x = torch.randn(2, 6, 64, 96)
    with torch.no_grad():
        expected, same, other = plain(x), zero(x), merged(x)
    for a, b in zip(expected, same):
        assert torch.equal(a, b)
    assert torch.equal(expected[0], other[0])  # stage 1 does not merge
    assert not torch.allclose(expected[2], other[2])


class RecordingLayer(BaseFusionLayer):
    """Records what a block hands its fusion layers."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = []

    def merge_tokens(self, stage, block, merge):
        self.calls.append(('merge', stage, merge))

    def fuse_attention_heads(self, stage, block, y):
        self.calls.append(('heads', stage, y.shape))
        return y

    def fuse_attention_output(self, stage, block, y):
        self.calls.append(('output', stage, y.shape))
        return y


def test_fusion_layers_see_the_merged_tokens_of_one_shared_map():
    if 'RecordingLayer' not in MODELS:
        MODELS.register_module(module=RecordingLayer)
    model = backbone(
        dict(type='RecordingLayer'),
        [None, None, dict(ratio=0.5), None])
    layer = model.fusion_layers[0]
    with torch.no_grad():
        model(torch.randn(2, 6, 64, 96))
    stage3 = [call for call in layer.calls if call[1] == 2]
    merges = [call[2] for call in stage3 if call[0] == 'merge']
    assert len(merges) == 2  # both blocks of stage 3
    for merge in merges:
        # one index per image, shared by the two streams: (B, N)
        assert merge.index.shape == (2, 4 * 6)
        assert merge.num_merged == 12
    shapes = [call[2] for call in stage3 if call[0] != 'merge']
    assert shapes == [(4, 12, 64)] * 4  # (S*B, N', C) at both points
    others = [call for call in layer.calls if call[1] != 2]
    assert all(call[0] != 'merge' and call[2][1] != 12 for call in others)


def test_block_copies_the_merged_attention_back_before_the_residual():
    # the attention branch of a merging block equals the unmerged
    # branch computed from the group means of its queries, copied back
    model = backbone(None, [None, None, dict(ratio=0.5), None])
    block = model.block3[0]
    torch.manual_seed(3)
    x = torch.randn(2, 24, 64)  # 2 streams of 1 image
    hw = (4, 6)
    site = model.fusion_layers.site(2, 0)
    y = block.norm1(x)
    merge = block.token_merge.match(y, 2, hw)
    attn = block.attn
    heads = attn.num_heads
    q = attn.q(merging.grid_merge(merge, y)).reshape(2, 12, heads, -1)
    reduced = attn.norm(
        attn.sr(y.transpose(1, 2).reshape(2, 64,
                                          *hw)).flatten(2).transpose(1, 2))
    k, v = attn.kv(reduced).reshape(2, -1, 2, heads,
                                    64 // heads).permute(2, 0, 3, 1, 4)
    weights = (q.transpose(1, 2) @ k.transpose(-2, -1) *
               (64 // heads)**-0.5).softmax(dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(2, 12, 64)
    expected = x + merging.grid_unmerge(merge, attn.proj(out))
    expected = expected + block.mlp(block.norm2(expected), hw)
    with torch.no_grad():
        assert torch.allclose(block(x, hw, site), expected, atol=1e-5)
    assert merge.index.shape == (1, 24)  # one map for both streams


def test_token_exchange_on_merged_tokens_uses_group_mean_scores():
    layer = TokenExchange(
        num_streams=3, channels=[8], depths=[1], allocation_pattern=4)
    torch.manual_seed(0)
    hw = (4, 4)
    x = torch.randn(3 * 2, 16, 8)
    layer.begin_forward()
    layer.begin_block(0, 0, x, hw)
    merge = merging.grid_matching(x.reshape(3, 2, 16, 8), hw, 0.5)
    layer.merge_tokens(0, 0, merge)
    y = torch.randn(3 * 2, merge.num_merged, 8)
    out = layer.fuse_attention_output(0, 0, y)
    scores = layer.scores[-1]  # (3, 2, 16) of the full grid
    group_scores = merging.grid_merge(merge, scores.reshape(6, 16, 1))
    allocation = layer._allocation[:, merging.group_first(merge)]
    expected = fuse_attention_output(
        y.reshape(3, 2, -1, 8), group_scores.reshape(3, 2, -1),
        layer.threshold, allocation)
    assert torch.equal(out, expected.reshape(out.shape))
    # the allocation of a group is that of its first grid position
    first = merging.group_first(merge)
    for b in range(2):
        for g in range(merge.num_merged):
            position = int(first[b, g])
            assert (merge.index[b, :position] != g).all()
            assert int(merge.index[b, position]) == g


def test_token_merge_config_errors_name_the_stage():
    with pytest.raises(ValueError, match='one entry'):
        FusedMiT(token_merge=dict(ratio=0.5), **TINY)
    with pytest.raises(ValueError, match=r'token_merge\[2\]'):
        FusedMiT(token_merge=[None, None, dict(ratio=0.9), None], **TINY)
    with pytest.raises(TypeError, match=r'token_merge\[1\]'):
        FusedMiT(token_merge=[None, dict(rate=0.5), None, None], **TINY)
