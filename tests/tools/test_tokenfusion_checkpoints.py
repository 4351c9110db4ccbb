"""Checkpoint conversion for TokenFusion: official (yikaiw/TokenFusion)
segmentation checkpoints -> our segmentor (``FusedMiT`` with a
``TokenExchange`` fusion layer), checked against an independent functional
forward of the reference model; ImageNet MiT (NVlabs and mmseg layouts) ->
``FusedMiT`` initialisation.

The reference forward below is written from the reference code's
behaviour as documented in docs/tokenfusion.md: lists of per-modality
tensors, explicit loops over modalities, the reference's own parameter
names (MiT layers and head in ``reference_fixtures.py``). It shares no
code with ``projects/``.
"""
import os.path as osp
import re
from collections import OrderedDict

import pytest
import torch
from mmseg.models.backbones import MixVisionTransformer

from projects.common.checkpoint import unwrap_state_dict
from projects.multimodal_seg.models.backbones.fused_mit import FusedMiT
from tools.model_converters import mit2fusedmit, tokenfusion2mmseg
from tools.model_converters.reference_keys import (
    convert_tokenfusion_reference, describe_tokenfusion_state)
from ..utils import REPO_ROOT
# yapf: disable (isort and yapf wrap this import differently)
from .reference_fixtures import (DEPTHS, DIMS, HEADS, SR_RATIOS, TINY_MIT, E,
                                 K, M, RandomTensors, add_mit_encoder,
                                 add_segformer_head, build_segmentor,
                                 check_cli_error_names_the_file,
                                 check_tools_with_converted_checkpoint,
                                 make_nvlabs_mit, ref_attention, ref_ensemble,
                                 ref_head, ref_layer_norm, ref_mix_ffn,
                                 ref_patch_embed, ref_score,
                                 reference_file_content)

# yapf: enable

DEMO_CONFIG = osp.join(
    REPO_ROOT, 'configs/tokenfusion/'
    'tokenfusion_mit-tiny_1xb8-1k_synthetic-rgbd-64x64.py')

THETA = 0.02
# where the converted keys put TokenExchange's score predictors
PREDICTORS = 'backbone.fusion_layers.0.score_predictors.'

# --------------------------------------------------------------------------
# The reference checkpoint (its own names) and forward
# --------------------------------------------------------------------------


def make_reference_state(seed=0):
    """Weights of the reference ``WeTr`` (2 modalities) with the names of
    its state dict, without the DataParallel prefix."""
    rnd = RandomTensors(seed)
    sd = OrderedDict()
    # a parameter of WeTr itself comes before its children's
    sd['alpha'] = torch.tensor([0.7, -0.4])
    add_mit_encoder(sd, rnd, DIMS, DEPTHS, SR_RATIOS, M)
    for s in range(4):
        c = DIMS[s]
        for m in range(M):
            net = f'encoder.score_predictor.{s}.score_nets.{m}.'
            sd[net + '0.weight'], sd[net + '0.bias'] = rnd.norm(c)
            shapes = ((c, c), (c // 2, c), (c // 4, c // 2), (2, c // 4))
            for index, (out, inp) in zip((1, 3, 5, 7), shapes):
                sd[f'{net}{index}.weight'] = rnd.weight(out, inp)
                sd[f'{net}{index}.bias'] = rnd.normal(out, std=0.1)
            # Push the "keep" probability towards θ, and spread it, so that
            # a good share of the tokens (not all) falls below θ and is
            # exchanged: without this no token would be exchanged.
            sd[net + '7.weight'] *= 6.
            sd[net + '7.bias'] += torch.tensor([-3.5, 0.])
    add_segformer_head(sd, rnd, DIMS, E, K)
    return sd


def reference_forward(sd, inputs):
    """The reference WeTr in eval mode on (B, 6, H, W) RGB-D input.

    Returns:
        tuple: per-modality logits [y_rgb, y_depth], the ensemble and the
        masks, one [mask_rgb, mask_depth] pair per block.
    """
    xs = [inputs[:, 3 * m:3 * (m + 1)] for m in range(M)]
    pyramids = [[] for _ in range(M)]
    masks = []
    for s in range(4):
        tokens = []
        for m in range(M):
            y, height, width = ref_patch_embed(xs[m], sd, s + 1, m)
            tokens.append(y)
        for j in range(DEPTHS[s]):
            block = f'encoder.block{s + 1}.{j}.'
            mask = [
                ref_score(tokens[m], sd, 'encoder.', s, m) for m in range(M)
            ]
            masks.append(mask)
            attn = []
            for m in range(M):
                a = ref_attention(
                    ref_layer_norm(tokens[m], sd, block + 'norm1', m), sd,
                    block, m, height, width, HEADS[s], SR_RATIOS[s])
                attn.append(a * mask[m].unsqueeze(-1))
            exchanged = []
            for m in range(M):
                out = attn[m].clone()
                low = mask[m] < THETA
                out[low] = attn[1 - m][low]
                exchanged.append(out)
            tokens = [tokens[m] + exchanged[m] for m in range(M)]
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
    return logits, ref_ensemble(sd, logits), masks


# --------------------------------------------------------------------------
# Official checkpoint -> our segmentor
# --------------------------------------------------------------------------


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """A reference checkpoint file, its conversion by the CLI and a config
    of the matching segmentor (the demo config, resized)."""
    tmp = tmp_path_factory.mktemp('tokenfusion_ckpt')
    state = make_reference_state()
    src = str(tmp / 'model-best.pth.tar')
    torch.save(reference_file_content(state), src)
    dst = str(tmp / 'converted' / 'tokenfusion_tiny.pth')
    meta = tokenfusion2mmseg.main([src, dst])
    config = tmp / 'tokenfusion_tiny.py'
    config.write_text(
        f'_base_ = {DEMO_CONFIG!r}\n'
        'model = dict(\n'
        f'    backbone=dict(num_layers={DEPTHS}, init_cfg=None),\n'
        f'    decode_head=dict(channels={E}))\n')
    return dict(
        tmp=tmp, state=state, src=src, dst=dst, meta=meta, config=str(config))


def test_converted_file_and_summary(converted):
    saved = torch.load(converted['dst'], weights_only=True)
    assert set(saved) == {'state_dict', 'meta'}
    meta = saved['meta']
    assert meta['epoch_start'] == 3 and meta['best_val'] == 0.5
    assert meta['num_modalities'] == M
    assert meta['depths'] == DEPTHS
    assert meta['embed_dims'] == DIMS
    assert meta['sr_ratios'] == SR_RATIOS
    assert meta['num_classes'] == K and meta['head_channels'] == E
    assert meta['fusion'] == 'tokenfusion'
    assert meta['num_streams'] == M
    assert meta['fused_stages'] == [0, 1, 2, 3]
    assert 'fusion_sites' not in meta and 'hub_stages' not in meta
    assert meta['alpha'] == pytest.approx([0.7, -0.4])
    # the modality names the inferencer checks (the RGB-D release default)
    assert meta['dataset_meta'] == {'modalities': ['rgb', 'depth']}
    assert meta == converted['meta']
    state = saved['state_dict']
    assert describe_tokenfusion_state(state) == {
        k: v
        for k, v in meta.items()
        if k not in ('converted_from', 'converter', 'num_tensors',
                     'epoch_start', 'best_val', 'dataset_meta')
    }
    # the score predictors are the fusion layer's, one per stage
    predictors = [k for k in state if 'score_predictor' in k]
    assert set(predictors) == {
        f'{PREDICTORS}{s}.{layer}.{kind}'
        for s in range(4)
        for layer in ('norm', 'fc1', 'fc2', 'fc3', 'fc4')
        for kind in ('weight', 'bias')
    }
    assert 'backbone.fusion_layers.0.allocation' not in state  # M = 2
    # without its fusion layer: a plain multi-stream model
    plain = describe_tokenfusion_state({
        k: v
        for k, v in state.items() if not k.startswith('backbone.fusion_')
    })
    assert plain['fusion'] == 'none' and plain['fused_stages'] == []
    # stacked per-modality tensors: row m is ln_m / score_nets.m
    ref = converted['state']
    assert torch.equal(state['backbone.block1.1.norm2.weight'][1],
                       ref['encoder.block1.1.norm2.ln_1.weight'])
    assert torch.equal(state[PREDICTORS + '2.fc3.bias'][0],
                       ref['encoder.score_predictor.2.score_nets.0.5.bias'])
    assert torch.equal(state[PREDICTORS + '0.norm.weight'][1],
                       ref['encoder.score_predictor.0.score_nets.1.0.weight'])
    assert torch.equal(state['backbone.block3.0.mlp.dwconv.weight'],
                       ref['encoder.block3.0.mlp.dwconv.dwconv.weight'])
    # a bare state dict without the DataParallel prefix converts the same
    bare = convert_tokenfusion_reference(ref)
    assert list(bare) == list(state)
    assert all(torch.equal(bare[k], state[k]) for k in state)


def test_matches_reference_forward(converted):
    model = build_segmentor(converted['config'])
    saved = torch.load(converted['dst'], weights_only=True)
    model.load_state_dict(saved['state_dict'], strict=True)
    model.eval()
    layer = model.backbone.fusion_layers[0]
    assert type(layer).__name__ == 'TokenExchange'
    assert layer.threshold == THETA and layer.variant == 'attention'
    inputs = torch.randn(
        2, 2 * 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model.stream_logits(inputs)
        scores = layer.scores
        ensemble = model.ensemble(logits)
        ref_logits, ref_ensemble, ref_masks = reference_forward(
            converted['state'], inputs)

    # tokens really are exchanged, for each modality, but not all of them
    for m in range(M):
        below = torch.cat([(pair[m] < THETA).flatten()
                           for pair in ref_masks]).float().mean()
        assert 0.05 < below < 0.95, (m, below)
    assert len(scores) == len(ref_masks) == sum(DEPTHS)
    # in forward order, one per block
    assert layer.score_blocks == layer.block_names == [
        f'block{s + 1}.{j}' for s in range(4) for j in range(DEPTHS[s])
    ]
    for score, pair in zip(scores, ref_masks):
        torch.testing.assert_close(score, torch.stack(pair), rtol=0, atol=1e-5)

    assert logits.shape == (M, 2, K, 16, 16)
    for m in range(M):
        torch.testing.assert_close(logits[m], ref_logits[m], rtol=0, atol=1e-4)
    torch.testing.assert_close(ensemble, ref_ensemble, rtol=0, atol=1e-4)
    # the ensemble weights are not uniform: it differs from the mean
    assert (ensemble - logits.mean(0)).abs().max() > 1e-2


def test_tools_with_converted_checkpoint(converted):
    check_tools_with_converted_checkpoint(converted)


def test_unknown_key_is_an_error(converted):
    content = reference_file_content(converted['state'])
    content['segmenter']['module.encoder.head.weight'] = torch.zeros(3, 128)
    content['segmenter']['module.decoder.linear_fuse.conv.bias'] = \
        torch.zeros(E)
    with pytest.raises(KeyError) as error:
        convert_tokenfusion_reference(content)
    assert 'encoder.head.weight' in str(error.value)
    assert 'decoder.linear_fuse.conv.bias' in str(error.value)
    # GELU / LogSoftmax positions of score_nets hold no parameters
    content = reference_file_content(converted['state'])
    content['segmenter'][
        'module.encoder.score_predictor.0.score_nets.0.2.weight'] = \
        torch.zeros(16)
    with pytest.raises(KeyError, match='score_nets.0.2.weight'):
        convert_tokenfusion_reference(content)


def test_missing_modality_is_an_error(converted):
    content = reference_file_content(converted['state'])
    del content['segmenter']['module.encoder.block2.0.norm1.ln_1.weight']
    with pytest.raises(ValueError, match=r'block2\.0\.norm1\.weight'):
        convert_tokenfusion_reference(content)
    # a third modality in one place only
    content = reference_file_content(converted['state'])
    content['segmenter']['module.encoder.norm4.ln_2.weight'] = \
        torch.ones(128)
    with pytest.raises(ValueError, match=r'norm4\.weight'):
        convert_tokenfusion_reference(content)


def test_modality_names(converted, tmp_path):
    named = tokenfusion2mmseg.main([
        converted['src'],
        str(tmp_path / 'hha.pth'), '--modalities', 'rgb', 'hha'
    ])
    assert named['dataset_meta'] == {'modalities': ['rgb', 'hha']}
    with pytest.raises(
            SystemExit, match='--modalities rgb: expected 2 '
            'distinct names'):
        tokenfusion2mmseg.main([
            converted['src'],
            str(tmp_path / 'one.pth'), '--modalities', 'rgb'
        ])


def test_cli_error_names_the_file(converted):
    check_cli_error_names_the_file(tokenfusion2mmseg.main,
                                   reference_file_content(converted['state']),
                                   converted['tmp'])


# --------------------------------------------------------------------------
# ImageNet MiT -> FusedMiT
# --------------------------------------------------------------------------


def nvlabs_to_mmseg(sd):
    """mmseg's ``mit2mmseg`` rules, by hand."""
    out = OrderedDict()
    for key, value in sd.items():
        if key.startswith('head.'):
            continue
        match = re.fullmatch(r'patch_embed(\d)\.(proj|norm)\.(\w+)', key)
        if match:
            part = 'projection' if match[2] == 'proj' else 'norm'
            out[f'layers.{int(match[1]) - 1}.0.{part}.{match[3]}'] = value
            continue
        match = re.fullmatch(r'norm(\d)\.(\w+)', key)
        if match:
            out[f'layers.{int(match[1]) - 1}.2.{match[2]}'] = value
            continue
        match = re.fullmatch(r'block(\d)\.(\d+)\.(.+)\.(weight|bias)', key)
        stage, block, name, kind = int(match[1]), match[2], match[3], match[4]
        prefix = f'layers.{stage - 1}.1.{block}.'
        if name == 'attn.q':
            kv = sd[f'block{stage}.{block}.attn.kv.{kind}']
            out[f'{prefix}attn.attn.in_proj_{kind}'] = torch.cat([value, kv])
        elif name == 'attn.kv':
            continue  # concatenated with q
        elif name == 'attn.proj':
            out[f'{prefix}attn.attn.out_proj.{kind}'] = value
        elif name.startswith('mlp.'):
            index = {'mlp.fc1': 0, 'mlp.dwconv.dwconv': 1, 'mlp.fc2': 4}[name]
            if index != 1 and kind == 'weight':
                value = value[:, :, None, None]  # Linear -> 1x1 conv
            out[f'{prefix}ffn.layers.{index}.{kind}'] = value
        else:  # norm1, norm2, attn.sr, attn.norm
            out[f'{prefix}{name}.{kind}'] = value
    return out


@pytest.fixture(scope='module')
def imagenet_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('mit')
    nvlabs = make_nvlabs_mit()
    mmseg = nvlabs_to_mmseg(nvlabs)
    paths = dict(
        nvlabs=str(tmp / 'mit_tiny.pth'),
        mmseg=str(tmp / 'mit_tiny_mmseg.pth'))
    torch.save(nvlabs, paths['nvlabs'])
    torch.save(mmseg, paths['mmseg'])
    return dict(tmp=tmp, paths=paths, nvlabs=nvlabs, mmseg=mmseg)


def init_tokenfusion_mit(path, num_modalities=M):
    """A TokenFusion ``FusedMiT`` initialised from ``path``."""
    model = FusedMiT(
        num_modalities=num_modalities,
        fusion=dict(type='TokenExchange'),
        init_cfg=dict(type='Pretrained', checkpoint=path),
        **TINY_MIT)
    model.init_weights()
    return model.state_dict()


def without_predictors(state):
    """The state without the fusion layer (not in ImageNet files)."""
    assert any(
        k.startswith('fusion_layers.0.score_predictors.') for k in state)
    return {
        k: v
        for k, v in state.items() if not k.startswith('fusion_layers.')
    }


def test_imagenet_init_both_layouts_and_cli(imagenet_files):
    nvlabs = imagenet_files['nvlabs']
    from_nvlabs = without_predictors(
        init_tokenfusion_mit(imagenet_files['paths']['nvlabs']))
    from_mmseg = without_predictors(
        init_tokenfusion_mit(imagenet_files['paths']['mmseg']))
    expected_keys = {
        k.replace('mlp.dwconv.dwconv.', 'mlp.dwconv.')
        for k in nvlabs if not k.startswith('head.')
    }
    assert set(from_nvlabs) == set(from_mmseg) == expected_keys
    per_modality = 0
    for key, value in nvlabs.items():
        if key.startswith('head.'):
            continue
        loaded = from_nvlabs[key.replace('mlp.dwconv.dwconv.', 'mlp.dwconv.')]
        if loaded.shape == value.shape:  # shared layer
            assert torch.equal(loaded, value), key
        else:  # every modality's norm starts as the single norm
            assert loaded.shape == (M, ) + value.shape, key
            for m in range(M):
                assert torch.equal(loaded[m], value), key
            per_modality += 1
    # weight + bias of: 4 patch_embed norms, 4 stage norms, norm1 and norm2
    # of 5 blocks, attn.norm of the 4 blocks with sr > 1
    assert per_modality == 2 * (4 + 4 + 2 * 5 + 4)
    for key in from_nvlabs:
        assert torch.equal(from_nvlabs[key], from_mmseg[key]), key

    for layout in ('nvlabs', 'mmseg'):
        dst = str(imagenet_files['tmp'] / f'tokenfusion_{layout}.pth')
        mit2fusedmit.main(
            [imagenet_files['paths'][layout], dst, '--num-modalities',
             str(M)])
        saved = torch.load(dst, weights_only=True)
        assert set(saved['state_dict']) == expected_keys
        from_cli = without_predictors(init_tokenfusion_mit(dst))
        for key in from_nvlabs:
            assert torch.equal(from_cli[key], from_nvlabs[key]), key


def test_mit2fusedmit_rejects_other_arch(imagenet_files):
    dst = str(imagenet_files['tmp'] / 'b0.pth')
    with pytest.raises(
            SystemExit, match=re.escape(imagenet_files['paths']['nvlabs'])):
        mit2fusedmit.main([
            imagenet_files['paths']['nvlabs'], dst, '--num-modalities', '2',
            '--arch', 'b0'
        ])
    assert not osp.exists(dst)


def test_single_modality_equals_mmseg_mit(imagenet_files):
    ours = FusedMiT(
        num_modalities=1,
        init_cfg=dict(
            type='Pretrained', checkpoint=imagenet_files['paths']['nvlabs']),
        **TINY_MIT)
    ours.init_weights()
    theirs = MixVisionTransformer(
        in_channels=3,
        embed_dims=16,
        num_layers=DEPTHS,
        num_heads=HEADS,
        sr_ratios=SR_RATIOS,
        drop_path_rate=0.,
        init_cfg=dict(
            type='Pretrained', checkpoint=imagenet_files['paths']['mmseg']))
    theirs.init_weights()
    # mmseg loads non-strictly: make sure every tensor came from the file
    state = theirs.state_dict()
    assert set(state) == set(imagenet_files['mmseg'])
    for key, value in imagenet_files['mmseg'].items():
        assert torch.equal(state[key], value), key
    ours.eval()
    theirs.eval()
    inputs = torch.randn(
        2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        features = ours(inputs)
        expected = theirs(inputs)
    # no fusion layer: a plain MiT
    assert len(ours.fusion_layers) == 0 and ours.fusion_loss() == {}
    assert len(features) == len(expected) == 4
    for feat, ref in zip(features, expected):
        torch.testing.assert_close(feat, ref, rtol=0, atol=1e-5)


def test_backbone_weights_of_any_checkpoint_layout():
    weight = torch.ones(2)
    plain = {'patch_embed1.proj.weight': weight}
    assert unwrap_state_dict(plain) == plain
    assert unwrap_state_dict({'module.patch_embed1.proj.weight':
                              weight}) == plain
    segmentor = {
        'module.backbone.patch_embed1.proj.weight': weight,
        'module.decode_head.linear_pred.weight': weight,
        'module.alpha': weight
    }
    assert unwrap_state_dict(segmentor) == plain
    assert unwrap_state_dict({'state_dict': segmentor}) == plain
