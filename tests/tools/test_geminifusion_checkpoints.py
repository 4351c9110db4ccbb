"""Official GeminiFusion (JiaDingCN/GeminiFusion) MiT checkpoints -> our
segmentor (``FusedMiT`` with a ``GeminiFusion`` fusion layer, and an
``AuxiliaryHub`` for more than two modalities), checked against an
independent functional forward of the reference model.

The reference forward follows the reference code path literally, as
docs/geminifusion.md documents it: lists of per-stream tensors, a Python
loop over the batch, and per image and direction one
``torch.nn.MultiheadAttention`` call (loaded with the checkpoint's tensors)
with query (1, N, C) and keys / values (2, N, C): noised self and
relation-modulated self / other stream. It shares no code with
``projects/``.
"""
import os.path as osp
import re
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from tools.model_converters import geminifusion2mmseg
from tools.model_converters.geminifusion2mmseg import \
    convert_geminifusion_reference
from tools.model_converters.reference_keys import (
    GEMINI_PARAMS, convert_tokenfusion_reference, describe_tokenfusion_state,
    gemini_site)
from ..utils import REPO_ROOT
# yapf: disable (isort and yapf wrap this import differently)
from .reference_fixtures import (DEPTHS, DIMS, HEADS, SR_RATIOS, E, K, M,
                                 RandomTensors, add_mit_encoder,
                                 add_segformer_head, build_segmentor,
                                 check_cli_error_names_the_file,
                                 check_tools_with_converted_checkpoint,
                                 ref_attention, ref_ensemble, ref_head,
                                 ref_layer_norm, ref_linear, ref_mix_ffn,
                                 ref_patch_embed, reference_file_content)

# yapf: enable

DEMO_CONFIG = osp.join(
    REPO_ROOT, 'configs/geminifusion/'
    'geminifusion_mit-tiny_1xb8-1k_synthetic-rgbd-64x64.py')
# the DeLiVER-style demo: 4 modalities, two streams behind the hub
HUB_CONFIG = osp.join(
    REPO_ROOT, 'configs/geminifusion/'
    'geminifusion_mit-tiny_1xb8-3k_synthetic-rgbdel-64x64.py')
# where the converted keys put the fusion layer and the hub
FUSION = 'backbone.fusion_layers.0.'
HUB = 'backbone.hub.score_predictors.'

# 4 fusion heads (the demo config has 8) so that the config override is
# exercised
FUSION_HEADS = 4

# --------------------------------------------------------------------------
# The reference checkpoint (its own names) and forward
# --------------------------------------------------------------------------


def make_reference_state(seed=0, embed_modalities=None, hub=False):
    """Weights of the reference GeminiFusion ``WeTr`` (main-branch names
    without the DataParallel prefix). ``embed_modalities`` / ``hub``: the
    DeLiVER model with that many modalities (patch-embed norms per
    modality, the CMNeXt-style hub ``extra_score_predictor``)."""
    rnd = RandomTensors(seed)
    sd = OrderedDict()
    sd['alpha'] = torch.tensor([0.9, -0.3])

    def gemini(prefix, c):
        for direction in ('cross_attn_0_to_1', 'cross_attn_1_to_0'):
            # scaled up so that the 2-way attention is far from uniform
            sd[f'{prefix}{direction}.in_proj_weight'] = 2 * rnd.weight(
                3 * c, c)
            sd[f'{prefix}{direction}.in_proj_bias'] = rnd.normal(
                3 * c, std=0.1)
            sd[f'{prefix}{direction}.out_proj.weight'] = rnd.weight(c, c)
            sd[f'{prefix}{direction}.out_proj.bias'] = rnd.normal(c, std=0.1)
        judger = prefix + 'relation_judger.0.'
        sd[judger + 'fc1.weight'] = rnd.weight(c, 2 * c)
        sd[judger + 'fc1.bias'] = rnd.normal(c, std=0.1)
        # a spread channel softmax (not ~1/C everywhere)
        sd[judger + 'fc2.weight'] = 4 * rnd.weight(c, c)
        sd[judger + 'fc2.bias'] = rnd.normal(c, std=0.1)
        sd[prefix + 'k_noise.weight'] = rnd.normal(2, c)
        sd[prefix + 'v_noise.weight'] = rnd.normal(2, c)

    add_mit_encoder(
        sd,
        rnd,
        DIMS,
        DEPTHS,
        SR_RATIOS,
        M,
        attn_extra=gemini,
        embed_modalities=embed_modalities)
    if hub:
        for s, c in enumerate(DIMS):
            for i in range(embed_modalities):
                net = f'encoder.extra_score_predictor.{s}.score_nets.{i}.'
                sd[net + '0.weight'] = rnd.normal(c, 1, 3, 3, std=1 / 3)
                sd[net + '0.bias'] = rnd.normal(c, std=0.1)
                sd[net + '1.weight'] = rnd.weight(1, c, 1, 1)
                sd[net + '1.bias'] = rnd.normal(1, std=0.1)
    add_segformer_head(sd, rnd, DIMS, E, K)
    return sd


def deliver_state(state):
    """The DeLiVER branch's names (``model.state_dict()`` of its
    ``GeminiFusion``): ``backbone.`` / ``decode_head.`` / ``alpha``."""
    renamed = OrderedDict()
    for key, value in state.items():
        key = re.sub(r'^encoder\.', 'backbone.', key)
        renamed[re.sub(r'^decoder\.', 'decode_head.', key)] = value
    return renamed


def reference_mha(sd, name, channels, heads):
    """A fresh nn.MultiheadAttention holding the checkpoint's tensors."""
    mha = nn.MultiheadAttention(channels, heads, dropout=0., batch_first=False)
    mha.load_state_dict({
        p: sd[f'{name}.{p}']
        for p in ('in_proj_weight', 'in_proj_bias', 'out_proj.weight',
                  'out_proj.bias')
    })
    return mha.eval()


def reference_gemini(x, sd, attn, heads, inter_weights):
    """The reference Attention's cross-attention on the two streams'
    attention outputs x = [x_0, x_1] (B, N, C), before ``attn.proj``.
    Appends the attention weights of the inter-modal key to
    ``inter_weights``."""
    channels = x[0].shape[-1]
    mhas = [
        reference_mha(sd, attn + direction, channels, heads)
        for direction in ('cross_attn_0_to_1', 'cross_attn_1_to_0')
    ]
    judger = attn + 'relation_judger.0.'

    def relation_judger(pair):  # Mlp_2 (fc1, GELU, fc2), then Softmax(-1)
        h = F.gelu(
            F.linear(pair, sd[judger + 'fc1.weight'], sd[judger + 'fc1.bias']))
        h = F.linear(h, sd[judger + 'fc2.weight'], sd[judger + 'fc2.bias'])
        return torch.softmax(h, dim=-1)

    new = [[], []]
    for bs in range(x[0].shape[0]):
        for m in range(2):
            other = 1 - m
            q = x[m][bs].unsqueeze(0)  # (1, N, C): the pixels are the batch
            relation_score = relation_judger(
                torch.cat([q, x[other][bs].unsqueeze(0)], dim=-1))
            noise_k = sd[attn + 'k_noise.weight'][m] + q
            noise_v = sd[attn + 'v_noise.weight'][m] + q
            k = torch.cat([noise_k, q * relation_score], dim=0)  # (2, N, C)
            v = torch.cat([noise_v, x[other][bs].unsqueeze(0)], dim=0)
            out, weights = mhas[m](q, k, v)
            inter_weights.append(weights[:, 0, 1])  # (N, ) head average
            new[m].append(x[m][bs] + out.squeeze(0))
    return [torch.stack(n) for n in new]


def reference_forward(sd, inputs, heads=FUSION_HEADS):
    """The reference GeminiFusion WeTr in eval mode on (B, 6, H, W) RGB-D.

    Returns:
        tuple: per-stream logits [y_rgb, y_depth], the ensemble and the
        inter-modal attention weights of every fusion call.
    """
    xs = [inputs[:, 3 * m:3 * (m + 1)] for m in range(M)]
    pyramids = [[] for _ in range(M)]
    inter_weights = []
    for s in range(4):
        tokens = []
        for m in range(M):
            y, height, width = ref_patch_embed(xs[m], sd, s + 1, m)
            tokens.append(y)
        for j in range(DEPTHS[s]):
            block = f'encoder.block{s + 1}.{j}.'
            attn = [
                ref_attention(
                    ref_layer_norm(tokens[m], sd, block + 'norm1', m),
                    sd,
                    block,
                    m,
                    height,
                    width,
                    HEADS[s],
                    SR_RATIOS[s],
                    project=False) for m in range(M)
            ]
            fused = reference_gemini(attn, sd, block + 'attn.', heads,
                                     inter_weights)
            tokens = [
                tokens[m] + ref_linear(fused[m], sd, block + 'attn.proj')
                for m in range(M)
            ]
            tokens = [
                tokens[m] + ref_mix_ffn(
                    ref_layer_norm(tokens[m], sd, block + 'norm2', m), sd,
                    block, height, width) for m in range(M)
            ]
        for m in range(M):
            y = ref_layer_norm(tokens[m], sd, f'encoder.norm{s + 1}', m)
            xs[m] = y.transpose(1, 2).reshape(y.shape[0], -1, height, width)
            pyramids[m].append(xs[m])
    logits = [ref_head(sd, pyramid) for pyramid in pyramids]
    return logits, ref_ensemble(sd, logits), inter_weights


# --------------------------------------------------------------------------
# Official checkpoint -> our segmentor
# --------------------------------------------------------------------------


def write_config(path, fusion_heads=FUSION_HEADS, base=DEMO_CONFIG):
    """A demo config resized to the tiny reference model, its fusion layer
    with ``fusion_heads`` heads."""
    path.write_text(f'_base_ = {base!r}\n'
                    'model = dict(\n'
                    f'    backbone=dict(num_layers={DEPTHS}, '
                    f'fusion=dict(heads={fusion_heads}), init_cfg=None),\n'
                    f'    decode_head=dict(channels={E}, num_classes={K}))\n')
    return str(path)


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """A main-branch reference file, its conversion by the CLI and a
    config of the matching segmentor (the demo config, resized)."""
    tmp = tmp_path_factory.mktemp('geminifusion_ckpt')
    state = make_reference_state()
    src = str(tmp / 'mit-tiny.pth.tar')
    torch.save(reference_file_content(state), src)
    dst = str(tmp / 'converted' / 'geminifusion_tiny.pth')
    meta = geminifusion2mmseg.main([src, dst])
    return dict(
        tmp=tmp,
        state=state,
        src=src,
        dst=dst,
        meta=meta,
        config=write_config(tmp / 'geminifusion_tiny.py'))


def load_segmentor(config, state_dict):
    """The segmentor of ``config`` holding ``state_dict`` (strictly)."""
    model = build_segmentor(config)
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def test_converted_file_and_summary(converted):
    saved = torch.load(converted['dst'], weights_only=True)
    assert set(saved) == {'state_dict', 'meta'}
    meta = saved['meta']
    assert meta == converted['meta']
    assert meta['epoch_start'] == 3 and meta['best_val'] == 0.5
    assert meta['fusion'] == 'geminifusion'
    assert meta['num_modalities'] == meta['num_streams'] == M
    assert meta['depths'] == DEPTHS and meta['embed_dims'] == DIMS
    assert meta['sr_ratios'] == SR_RATIOS
    assert meta['fused_stages'] == [0, 1, 2, 3]
    assert meta['fusion_sites'] == sum(DEPTHS)
    assert meta['fusion_channels'] == DIMS
    assert 'config' in meta['fusion_heads']
    assert meta['num_classes'] == K and meta['head_channels'] == E
    assert meta['alpha'] == pytest.approx([0.9, -0.3])
    assert 'hub_stages' not in meta
    assert meta['dataset_meta'] == {'modalities': ['rgb', 'depth']}
    state = saved['state_dict']
    ref = converted['state']
    assert describe_tokenfusion_state(state) == {
        k: v
        for k, v in meta.items()
        if k not in ('converted_from', 'converter', 'num_tensors',
                     'epoch_start', 'best_val', 'dataset_meta')
    }
    assert not any('score_predictor' in k for k in state)
    # every fusion tensor sits in the fusion layer's site of its block
    # (0-based stage), none in the blocks
    assert not any('.attn.' in k and 'cross_attn' in k and 'sites' not in k
                   for k in state)
    fusion = [k for k in state if k.startswith(FUSION)]
    assert set(fusion) == {
        f'{FUSION}sites.{s}.{j}.{p}'
        for s in range(4)
        for j in range(DEPTHS[s])
        for p in GEMINI_PARAMS
    }
    assert gemini_site('block1.1') == FUSION + 'sites.0.1.'
    assert torch.equal(
        state[FUSION + 'sites.0.1.cross_attn_1_to_0.in_proj_weight'],
        ref['encoder.block1.1.attn.cross_attn_1_to_0.in_proj_weight'])
    assert torch.equal(state[FUSION + 'sites.2.0.relation_judger.0.fc2.bias'],
                       ref['encoder.block3.0.attn.relation_judger.0.fc2.bias'])
    assert torch.equal(state[FUSION + 'sites.3.0.v_noise.weight'],
                       ref['encoder.block4.0.attn.v_noise.weight'])
    assert torch.equal(state['backbone.patch_embed2.norm.weight'][1],
                       ref['encoder.patch_embed2.norm.ln_1.weight'])
    assert torch.equal(state['backbone.block2.0.mlp.dwconv.bias'],
                       ref['encoder.block2.0.mlp.dwconv.dwconv.bias'])
    # a bare state dict without the DataParallel prefix converts the same
    bare = convert_geminifusion_reference(ref)
    assert list(bare) == list(state)
    assert all(torch.equal(bare[k], state[k]) for k in state)


def test_matches_reference_forward(converted):
    saved = torch.load(converted['dst'], weights_only=True)
    model = load_segmentor(converted['config'], saved['state_dict'])
    layer, = model.backbone.fusion_layers
    assert type(layer).__name__ == 'GeminiFusion'
    assert layer.heads == FUSION_HEADS
    assert layer.point == 'fuse_attention_heads'  # before attn.proj
    assert model.backbone.fusion_layers.blocks == [(s, j) for s in range(4)
                                                   for j in range(DEPTHS[s])]
    inputs = torch.randn(
        2, 2 * 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model.stream_logits(inputs)
        ensemble = model.ensemble(logits)
        ref_logits, ref_ensemble, inter = reference_forward(
            converted['state'], inputs)
    # GeminiFusion adds no loss term and logs nothing
    assert model.backbone.fusion_loss() == {}
    assert model.backbone.fusion_statistics(model.stream_names) == {}
    # the fusion is not degenerate: the inter-modal key gets a spread of
    # attention weights, neither ~0 nor ~1 everywhere
    inter = torch.cat(inter)
    assert 0.1 < inter.mean() < 0.9 and inter.std() > 0.05, inter
    assert logits.shape == (M, 2, K, 16, 16)
    diffs = [(logits[m] - ref_logits[m]).abs().max() for m in range(M)]
    diffs.append((ensemble - ref_ensemble).abs().max())
    print(f'max |ours - reference|: rgb {diffs[0]:.2e}, depth '
          f'{diffs[1]:.2e}, ensemble {diffs[2]:.2e}')
    for m in range(M):
        torch.testing.assert_close(logits[m], ref_logits[m], rtol=0, atol=1e-4)
    torch.testing.assert_close(ensemble, ref_ensemble, rtol=0, atol=1e-4)
    # the ensemble weights are not uniform: it differs from the mean
    assert (ensemble - logits.mean(0)).abs().max() > 1e-2

    # the fusion heads are not in the weights: the same checkpoint loads
    # into an 8-head model, which computes something else
    other = load_segmentor(
        write_config(converted['tmp'] / 'geminifusion_tiny_h8.py', 8),
        saved['state_dict'])
    assert other.backbone.fusion_layers[0].heads == 8
    with torch.no_grad():
        logits8 = other.stream_logits(inputs)
        ref8, _, _ = reference_forward(converted['state'], inputs, heads=8)
    torch.testing.assert_close(logits8, torch.stack(ref8), rtol=0, atol=1e-4)
    assert (logits8 - logits).abs().max() > 1e-2


def test_tools_with_converted_checkpoint(converted):
    log = check_tools_with_converted_checkpoint(converted)
    assert 'mIoU' in log


# --------------------------------------------------------------------------
# DeLiVER branch
# --------------------------------------------------------------------------


def test_deliver_two_modalities_equal_main_branch(converted):
    main = torch.load(converted['dst'], weights_only=True)['state_dict']
    deliver = deliver_state(converted['state'])
    assert 'backbone.block1.0.attn.k_noise.weight' in deliver
    plain = convert_geminifusion_reference(deliver)
    assert list(plain) == list(main)
    assert all(torch.equal(plain[k], main[k]) for k in main)
    # *_checkpoint.pth: the weights with the training state
    src = str(converted['tmp'] / 'deliver_checkpoint.pth')
    torch.save(
        dict(
            epoch=7,
            model_state_dict=deliver,
            optimizer_state_dict=dict(state={}, param_groups=[]),
            loss=0.25,
            scheduler_state_dict=dict(last_epoch=70),
            best_miou=55.5), src)
    dst = str(converted['tmp'] / 'deliver_converted.pth')
    meta = geminifusion2mmseg.main([src, dst])
    assert meta['epoch'] == 7 and meta['best_miou'] == 55.5
    saved = torch.load(dst, weights_only=True)['state_dict']
    assert all(torch.equal(saved[k], main[k]) for k in main)
    # main-branch names mixed into a DeLiVER state dict are unknown
    mixed = OrderedDict(deliver)
    mixed['encoder.norm1.ln_0.weight'] = torch.ones(DIMS[0])
    with pytest.raises(KeyError, match=r'encoder\.norm1\.ln_0\.weight'):
        convert_geminifusion_reference(mixed)


@pytest.fixture(scope='module')
def hub_state():
    """A DeLiVER RGB-D-E-L (4 modalities) state dict, tiny."""
    return deliver_state(
        make_reference_state(seed=3, embed_modalities=4, hub=True))


def test_deliver_hub_state_dict(hub_state, tmp_path):
    out = convert_geminifusion_reference(hub_state)
    assert not any('extra_score_predictor' in k for k in out)
    for s, c in enumerate(DIMS):
        assert out[f'backbone.patch_embed{s + 1}.norm.weight'].shape == (4, c)
        assert out[f'backbone.norm{s + 1}.bias'].shape == (2, c)
        for i in range(4):
            for key in ('0.weight', '0.bias', '1.weight', '1.bias'):
                theirs = f'backbone.extra_score_predictor.{s}.score_nets.{i}.'
                ours = f'{HUB}{s}.score_nets.{i}.'
                assert torch.equal(out[ours + key], hub_state[theirs + key])
    assert torch.equal(out['backbone.patch_embed3.norm.bias'][3],
                       hub_state['backbone.patch_embed3.norm.ln_3.bias'])
    assert out['backbone.block1.1.norm1.weight'].shape == (2, DIMS[0])
    assert out['backbone.block2.0.attn.norm.weight'].shape == (2, DIMS[1])
    assert out['alpha'].shape == (2, )
    info = describe_tokenfusion_state(out)
    assert info['num_modalities'] == 4 and info['num_streams'] == 2
    assert info['hub_stages'] == [0, 1, 2, 3]
    assert info['fusion'] == 'geminifusion'
    assert info['fused_stages'] == [0, 1, 2, 3]
    assert info['fusion_sites'] == sum(DEPTHS)
    # it loads strictly into the 4-modality demo model (auxiliary hub),
    # resized to the tiny reference model
    model = load_segmentor(
        write_config(tmp_path / 'hub.py', 8, HUB_CONFIG), out)
    backbone = model.backbone
    assert type(backbone.hub).__name__ == 'AuxiliaryHub'
    assert backbone.num_modalities == 4 and backbone.num_streams == 2
    assert model.stream_names == ('rgb', 'aux')
    assert torch.equal(
        backbone.hub.score_predictors[1].score_nets[2][0].weight,
        hub_state['backbone.extra_score_predictor.1.score_nets.2.0.weight'])
    with torch.no_grad():
        logits = model.stream_logits(torch.randn(1, 12, 64, 64))
    assert logits.shape == (2, 1, K, 16, 16) and logits.isfinite().all()


def test_deliver_hub_modality_errors(hub_state):
    # block / stage norms must have the 2 streams, even with the hub
    bad = OrderedDict(hub_state)
    bad['backbone.block3.0.norm2.ln_2.weight'] = torch.ones(DIMS[2])
    with pytest.raises(ValueError, match=r'block3\.0\.norm2\.weight'):
        convert_geminifusion_reference(bad)
    # patch-embed norms: the same M everywhere
    bad = OrderedDict(hub_state)
    del bad['backbone.patch_embed2.norm.ln_3.weight']
    with pytest.raises(ValueError, match=r'patch_embed2\.norm\.weight'):
        convert_geminifusion_reference(bad)
    # 4 patch-embed copies without the hub: not a 2-modality model
    bad = OrderedDict(
        (k, v) for k, v in hub_state.items() if 'extra_score' not in k)
    with pytest.raises(ValueError, match=r'patch_embed\d\.norm'):
        convert_geminifusion_reference(bad)
    # hub layers other than the depthwise conv (0) and the 1x1 conv (1)
    bad = OrderedDict(hub_state)
    bad['backbone.extra_score_predictor.0.score_nets.0.2.weight'] = \
        torch.ones(1)
    with pytest.raises(KeyError, match=r'score_nets\.0\.2\.weight'):
        convert_geminifusion_reference(bad)


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


def test_unknown_key_is_an_error(converted):
    content = reference_file_content(converted['state'])
    # a TokenFusion score predictor, our own (not the reference's) name
    content['segmenter'][
        'module.encoder.score_predictor.0.score_nets.0.0.weight'] = \
        torch.ones(16)
    content['segmenter'][
        'module.encoder.block1.0.attn.gemini.k_noise.weight'] = \
        torch.ones(2, 16)
    with pytest.raises(KeyError) as error:
        convert_geminifusion_reference(content)
    assert 'encoder.score_predictor.0.score_nets.0.0.weight' in str(
        error.value)
    assert 'encoder.block1.0.attn.gemini.k_noise.weight' in str(error.value)
    # and the TokenFusion converter refuses GeminiFusion tensors
    with pytest.raises(KeyError, match='cross_attn_0_to_1'):
        convert_tokenfusion_reference(
            reference_file_content(converted['state']))


def test_missing_fusion_key_is_an_error(converted):
    content = reference_file_content(converted['state'])
    del content['segmenter']['module.encoder.block2.0.attn.k_noise.weight']
    del content['segmenter'][
        'module.encoder.block1.1.attn.cross_attn_0_to_1.out_proj.bias']
    with pytest.raises(KeyError) as error:
        convert_geminifusion_reference(content)
    assert 'block2.0.attn.k_noise.weight' in str(error.value)
    assert 'block1.1.attn.cross_attn_0_to_1.out_proj.bias' in str(error.value)


def test_wrong_alpha_or_streams_is_an_error(converted):
    content = reference_file_content(converted['state'])
    content['segmenter']['module.alpha'] = torch.ones(3)
    with pytest.raises(ValueError, match=r'alpha has shape \(3,\)'):
        convert_geminifusion_reference(content)
    # a third stream in one place only
    content = reference_file_content(converted['state'])
    content['segmenter']['module.encoder.norm4.ln_2.weight'] = \
        torch.ones(128)
    with pytest.raises(ValueError, match=r'norm4\.weight'):
        convert_geminifusion_reference(content)


def test_cli_error_names_the_file(converted):
    check_cli_error_names_the_file(geminifusion2mmseg.main,
                                   reference_file_content(converted['state']),
                                   converted['tmp'])
