"""Token merging in the YOLOS image branch of 3D TokenFusion: the class and
detection tokens stay out of the merges, mid-layer position embeddings and
the seeds' gather follow them, and r = 0 changes nothing."""
import copy
import functools

import pytest
import torch

from projects.fusion_math import token_merging as merging
from projects.multimodal_det3d.models.backbones.yolos_vit import YOLOSViT
from projects.multimodal_det3d.models.detectors import tokenfusion_groupfree3d
from .test_tokenfusion_groupfree3d import (build_detector, run,
                                           synthetic_batch, tiny_fusion_cfg)

__all__ = ['synthetic_batch', 'tiny_fusion_cfg']  # fixtures used here

ARCH = dict(embed_dims=32, num_layers=4, num_heads=4)


def tiny_vit(token_merge=None, mid_pe=True, seed=0):
    torch.manual_seed(seed)
    return YOLOSViT(
        arch=ARCH,
        num_det_tokens=6,
        init_pe_size=(96, 128),
        mid_pe=mid_pe,
        token_merge=token_merge).eval()


@pytest.mark.parametrize('mid_pe', [False, True])
def test_r_zero_is_the_plain_vit_bit_for_bit(mid_pe):
    plain = tiny_vit(mid_pe=mid_pe)
    merged = tiny_vit(dict(r=0), mid_pe=mid_pe, seed=1)
    merged.load_state_dict(plain.state_dict())
    imgs = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        assert torch.equal(plain(imgs)[0], merged(imgs)[0])
    # a merging ViT differs, with the same parameters
    merging_vit = tiny_vit(dict(r=0.5), mid_pe=mid_pe, seed=1)
    merging_vit.load_state_dict(plain.state_dict())
    with torch.no_grad():
        assert not torch.allclose(plain(imgs)[0], merging_vit(imgs)[0])


def test_fractional_r_merges_patch_tokens_only():
    vit = tiny_vit(dict(r=0.5, layers=(1, 2, 3)))
    imgs = torch.randn(2, 3, 96, 128)  # 6 x 8 = 48 patches
    tokens, grid = vit.embed(imgs)
    state = vit.new_merge_state(tokens, grid, trace_source=True)
    counts = []
    with torch.no_grad():
        for block in range(4):
            tokens = vit.forward_blocks(tokens, block, block + 1, grid, state)
            counts.append(tokens.shape[1])
    # 48 -> 24 -> 12 -> 6 patch tokens (at most half per block), the
    # class and the 6 detection tokens kept
    assert counts == [1 + 48 + 6, 1 + 24 + 6, 1 + 12 + 6, 1 + 6 + 6]
    with torch.no_grad():  # a fraction merges nothing at <= 10 tokens
        assert vit.forward_blocks(tokens, 3, 4, grid, state).shape[1] == 13
    assert torch.equal(state.size.sum(dim=1)[:, 0], torch.full((2, ), 48.))
    # every input patch is held by exactly one merged token, the one the
    # index map names
    assert torch.equal(state.source.sum(dim=1), torch.ones(2, 48))
    assert torch.equal(state.source.argmax(dim=1), state.index)
    assert torch.equal(state.source.sum(dim=2, keepdim=True), state.size)


def test_class_and_detection_tokens_are_outside_the_merged_span():
    # A span merge passes the rows before and after the span unchanged,
    # exactly, whatever their similarity to the merged tokens.
    torch.manual_seed(0)
    patches, dims = 12, 4
    x = torch.randn(2, 1 + patches + 3, dims)
    x[:, -3:] = x[:, 1:4]  # detection tokens identical to some patches
    matching = merging.bipartite_matching(
        merging.merge_scores(x[:, 1:1 + patches], num_protected=0), 4, True, 0)
    size = torch.ones(2, patches, 1)
    received = torch.rand(2, patches)
    pooled, new_size = merging.pool_tokens(
        matching, x, size, received=received, start=1)
    assert pooled.shape == (2, 1 + 8 + 3, dims)
    assert torch.equal(pooled[:, :1], x[:, :1])
    assert torch.equal(pooled[:, -3:], x[:, -3:])
    assert torch.equal(new_size.sum(dim=1), torch.full((2, 1), 12.))
    attn = torch.rand(2, 2, 16, 16).softmax(dim=-1)
    merged = merging.merge_attention(
        matching, attn, size, received=received, start=1)
    assert merged.shape == (2, 2, 12, 12)
    assert torch.allclose(merged.sum(dim=-1), torch.ones(2, 2, 12))
    # the detection tokens' queries are not pooled: their rows only sum
    # the merged columns
    assert torch.allclose(merged[:, :, -3:, -3:], attn[:, :, -3:, -3:])
    assert torch.allclose(merged[:, :, -3:, :1], attn[:, :, -3:, :1])
    with pytest.raises(ValueError, match='received'):
        merging.merge_attention(matching, attn, size, start=1)


def test_informativeness_reads_the_detection_tokens():
    # with only the informativeness criterion, the patches the detection
    # tokens ignore merge first
    torch.manual_seed(0)
    x = torch.randn(1, 8, 4)
    received = torch.tensor([[0.5, 0.4, 0.3, 0.2, 1e-4, 1e-4, 0.45, 0.35]])
    scores = merging.merge_scores(
        x,
        merging.MergeCriteria(0., 1., 0., False),
        received=received,
        num_protected=0)
    matching = merging.bipartite_matching(scores, 1, False, 0)
    assert matching.src_idx.tolist() == [[2]]  # A token 4 (received 1e-4)
    assert matching.dst_idx.tolist() == [[2]]  # B token 5 (received 1e-4)


def test_mid_position_embeddings_follow_the_merges():
    vit = tiny_vit(dict(r=0.5, layers=(1, )))
    tokens, grid = vit.embed(torch.randn(1, 3, 96, 128))
    state = vit.new_merge_state(tokens, grid, trace_source=True)
    with torch.no_grad():
        tokens = vit.forward_blocks(tokens, 0, 1, grid, state)
        before = tokens
        after = vit.forward_blocks(tokens, 1, 2, grid, state)
    pos = vit.mid_pos_embed[1, 0].detach()
    merged_pos = vit._merged_pos(pos, state)
    # a merged token gets the mean embedding of the patches it holds
    expected = state.source @ pos[1:49] / state.size
    assert torch.allclose(merged_pos[:, 1:25], expected, atol=1e-6)
    assert torch.equal(merged_pos[0, 0], pos[0])
    assert torch.equal(merged_pos[0, 25:], pos[49:])
    assert before.shape[1] == 55 and after.shape[1] == 31


def test_configuration_errors_name_the_key():
    with pytest.raises(ValueError, match='token_merge.r'):
        tiny_vit(dict(r=1.5))
    with pytest.raises(ValueError, match='layers'):
        tiny_vit(dict(r=2, layers=(7, )))
    with pytest.raises(ValueError, match='block 1'):
        vit = tiny_vit(dict(r=40, overflow='error'))
        vit(torch.randn(1, 3, 96, 128))
    vit = tiny_vit(dict(r=0.5))
    tokens, grid = vit.embed(torch.randn(1, 3, 96, 128))
    with pytest.raises(ValueError, match='merge state'):
        vit.forward_blocks(tokens, 0, 2, grid)


def test_seeds_read_the_merged_token_holding_their_patch(
        tiny_fusion_cfg, synthetic_batch, monkeypatch):
    cfg = copy.deepcopy(tiny_fusion_cfg)
    cfg['img_backbone']['token_merge'] = dict(r=0.5)
    model = build_detector(cfg).eval()
    vit = model.img_backbone
    monkeypatch.setattr(
        vit, 'new_merge_state',
        functools.partial(vit.new_merge_state, trace_source=True))
    reads = []
    stream_class = tokenfusion_groupfree3d.ImageStream
    original = stream_class.token_of_seed

    def recording(stream):
        token = original(stream)
        reads.append((stream, token, stream.merge_state.source.clone(),
                      vit.patch_tokens(stream.tokens).detach().clone()))
        return token

    monkeypatch.setattr(stream_class, 'token_of_seed', recording)
    gathered = []
    model.seed_fusion.register_forward_hook(
        lambda module, args, out: gathered.append(args[2].detach()))
    with torch.no_grad():
        run(model, synthetic_batch, 'predict')
    assert len(reads) == len(gathered) == 2  # both decoder layers
    num_patches = vit.patch_tokens(vit.embed(torch.zeros(1, 3, 192,
                                                         256))[0]).shape[1]
    for (stream, token, source, patches), image_tokens in zip(reads, gathered):
        assert patches.shape[1] < num_patches  # merged at this depth
        rows = stream.view + stream.num_views * torch.arange(
            stream.view.shape[0])[:, None]
        valid = stream.valid
        held = source[rows[valid], token[valid], stream.patch[valid]]
        assert torch.equal(held, torch.ones_like(held))
        assert torch.equal(image_tokens[valid], patches[rows[valid],
                                                        token[valid]])
        assert (token[valid] != stream.patch[valid]).any()


def test_r_zero_detector_is_bit_identical(tiny_fusion_cfg, synthetic_batch):
    plain = build_detector(copy.deepcopy(tiny_fusion_cfg)).eval()
    cfg = copy.deepcopy(tiny_fusion_cfg)
    cfg['img_backbone']['token_merge'] = dict(r=0)
    merged = build_detector(cfg).eval()
    merged.load_state_dict(plain.state_dict())
    with torch.no_grad():
        out_plain = run(plain, synthetic_batch, 'tensor')
        out_merged = run(merged, synthetic_batch, 'tensor')
    keys = [k for k in out_plain if torch.is_tensor(out_plain[k])]
    assert keys
    for key in keys:
        assert torch.equal(out_plain[key], out_merged[key]), key
