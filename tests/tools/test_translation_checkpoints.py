"""Conversion of the official TokenFusion image-translation checkpoints
(``checkpoint-gen-*.pkl`` / ``checkpoint-dis-*.pkl``) into
:class:`MultiStreamTranslator` weights.

The reference files are fabricated here in the reference's layout: its
module tree (``patch_embed_enc``, ``score_predictor``, ``block_enc``,
``norm_enc``, ``patch_embed_dec``, ``block_dec``, ``norm_dec``,
``project``, ``alpha``) and state-dict order, ``ModuleParallel``'s
``.module.``, ``LayerNormParallel``'s ``lrnorm_{m}``, DataParallel's
``module.`` and storages tagged ``cuda:0``; at a tiny depth and width for
the forward checks and at the release's size for the name and shape
checks. The reference forward below is written from the reference's
behaviour as docs/translation.md describes it, in plain torch ops on those
tensors (per-modality lists, explicit loops over
modalities; the MiT attention and Mix-FFN of ``reference_fixtures.py``)
and shares no code with ``projects/``.
"""
import contextlib
import os.path as osp
import re
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmseg.registry import MODELS

from projects.common.checkpoint import (load_state_dict_exactly,
                                        unwrap_state_dict)
from projects.multimodal_translation.models import (MultiStreamTranslator,
                                                    pair_inputs)
from tools.model_converters import tokenfusion_translation2mmseg as tool
from ..utils import REPO_ROOT
from .reference_fixtures import (RandomTensors, ref_attention, ref_layer_norm,
                                 ref_mix_ffn, ref_score)

pytestmark = pytest.mark.usefixtures('one_thread')

M = 2
THETA = 0.02
HEADS = (1, 2, 4, 8, 16)
SR_RATIOS = (16, 8, 4, 2, 1)
# the release (gen_b2 / dis_b2)
RELEASE = dict(
    embed_dims=64, encoder_depths=(3, 4, 4, 6, 3), decoder_depths=(6, 4, 4, 3))
# the forward checks: reference names, smaller depths and width
TINY = dict(
    embed_dims=16, encoder_depths=(1, 1, 2, 1, 1), decoder_depths=(1, 1, 1, 1))
SIZE = 64
TASKONOMY_CONFIG = osp.join(
    REPO_ROOT, 'configs/tokenfusion_translation/'
    'tokenfusion-translation_mit-s_1xb1-300e_taskonomy-shade-texture2rgb-'
    '256x256.py')

# --------------------------------------------------------------------------
# Fabricated reference checkpoints
# --------------------------------------------------------------------------


class RandomFill:
    """Seeded random tensors of sensible scale."""

    def __init__(self, seed):
        self.rnd = RandomTensors(seed)

    def __call__(self, shape, role, fan_in=1):
        if role == 'weight':
            return self.rnd.normal(*shape, std=fan_in**-0.5)
        if role == 'norm.weight':
            return 1 + self.rnd.normal(*shape, std=0.2)
        return self.rnd.normal(*shape, std=0.1)  # biases


class TaggedFill:
    """Every tensor a constant, its own index, as a stride-0 view of one
    element (the release's sizes without its memory): a converted tensor
    tells which reference tensor(s) it came from."""

    def __init__(self):
        self.count = 0

    def __call__(self, shape, role, fan_in=1):
        self.count += 1
        return torch.full((), float(self.count)).expand(*shape)


class ReferenceLayout:
    """Builds a state dict in the reference's names and module order."""

    def __init__(self, fill, num_modalities=M):
        self.sd = OrderedDict()
        self.fill = fill
        self.m = num_modalities

    def parallel(self, name, out, inp, *kernel, groups=1):
        """ModuleParallel(nn.Linear / nn.Conv2d): ``name.module.*``."""
        fan_in = inp // groups * (kernel[0]**2 if kernel else 1)
        self.sd[f'{name}.module.weight'] = self.fill(
            (out, inp // groups) + kernel, 'weight', fan_in)
        self.sd[f'{name}.module.bias'] = self.fill((out, ), 'bias')

    def norm(self, name, channels):
        """LayerNormParallel: ``name.lrnorm_{m}.*``."""
        for m in range(self.m):
            self.sd[f'{name}.lrnorm_{m}.weight'] = self.fill((channels, ),
                                                             'norm.weight')
            self.sd[f'{name}.lrnorm_{m}.bias'] = self.fill((channels, ),
                                                           'norm.bias')

    def block(self, name, c, sr):
        """MiT ``Block``: norm1, attn (q, kv, proj, sr, norm), norm2, mlp."""
        self.norm(f'{name}.norm1', c)
        self.parallel(f'{name}.attn.q', c, c)
        self.parallel(f'{name}.attn.kv', 2 * c, c)
        self.parallel(f'{name}.attn.proj', c, c)
        if sr > 1:
            self.parallel(f'{name}.attn.sr', c, c, sr, sr)
            self.norm(f'{name}.attn.norm', c)
        self.norm(f'{name}.norm2', c)
        self.parallel(f'{name}.mlp.fc1', 4 * c, c)
        self.parallel(
            f'{name}.mlp.dwconv.dwconv', 4 * c, 4 * c, 3, 3, groups=4 * c)
        self.parallel(f'{name}.mlp.fc2', c, 4 * c)

    def predictor(self, name, c):
        """PredictorLG: per modality LayerNorm, Linear C -> C -> C/2 ->
        C/4 -> 2 at indices 0, 1, 3, 5, 7."""
        for m in range(self.m):
            net = f'{name}.score_nets.{m}'
            self.sd[f'{net}.0.weight'] = self.fill((c, ), 'norm.weight')
            self.sd[f'{net}.0.bias'] = self.fill((c, ), 'norm.bias')
            shapes = ((c, c), (c // 2, c), (c // 4, c // 2), (2, c // 4))
            for index, (out, inp) in zip((1, 3, 5, 7), shapes):
                self.sd[f'{net}.{index}.weight'] = self.fill((out, inp),
                                                             'weight', inp)
                self.sd[f'{net}.{index}.bias'] = self.fill((out, ), 'bias')

    def encoder(self, in_channels, dims, depths, predictors):
        """``MixVisionTransformerGen / Dis``'s encoder modules, in their
        registration order."""
        for s, c in enumerate(dims):
            self.parallel(f'patch_embed_enc.{s}.proj', c,
                          in_channels if s == 0 else dims[s - 1], 3, 3)
            self.norm(f'patch_embed_enc.{s}.norm', c)
        if predictors:
            for s, c in enumerate(dims):
                self.predictor(f'score_predictor.{s}', c)
        for s, c in enumerate(dims):
            for b in range(depths[s]):
                self.block(f'block_enc.{s}.{b}', c, SR_RATIOS[s])
        for s, c in enumerate(dims):
            self.norm(f'norm_enc.{s}', c)

    def file_content(self):
        """What ``torch.save(DataParallel(net).state_dict())`` holds."""
        content = OrderedDict(('module.' + k, v) for k, v in self.sd.items())
        content._metadata = OrderedDict(
            (name, dict(version=1)) for name in ('', 'module'))
        return content


def widths(embed_dims):
    return [embed_dims * h for h in HEADS]


def make_generator(fill,
                   embed_dims,
                   encoder_depths,
                   decoder_depths,
                   num_modalities=M,
                   out_channels=3):
    """The reference ``gen_b2``: a layout whose ``sd`` is its state dict
    without ``module.``."""
    dims = widths(embed_dims)
    layout = ReferenceLayout(fill, num_modalities)
    # a parameter of the model itself comes before its children's
    layout.sd['alpha'] = fill((num_modalities, ), 'bias')
    layout.encoder(3, dims, encoder_depths, predictors=True)
    # upsamplers 1024 -> 512 -> 256 -> 128 -> 64, then 64 -> 64 (at the
    # input size), each with a LayerNorm it never applies
    for j, i in enumerate(range(4, -1, -1)):
        out = dims[max(0, i - 1)]
        layout.parallel(f'patch_embed_dec.{j}.proj', out, dims[i] // 4, 1, 1)
        layout.norm(f'patch_embed_dec.{j}.norm', out)
    for j, depth in enumerate(decoder_depths):
        s = 3 - j
        for b in range(depth):
            layout.block(f'block_dec.{j}.{b}', dims[s], SR_RATIOS[s])
    for j in range(4):
        layout.norm(f'norm_dec.{j}', dims[3 - j])
    layout.parallel('project', out_channels, dims[0], 1, 1)
    return layout


def make_discriminator(fill, embed_dims, depths, num_modalities=M):
    """The reference ``dis_b2``, as :func:`make_generator`."""
    dims = widths(embed_dims)
    layout = ReferenceLayout(fill, num_modalities)
    layout.encoder(6, dims, depths, predictors=False)
    layout.parallel('project', 1, dims[-1], 1, 1)
    return layout


def sharpen_predictors(sd, num_stages=5):
    """Push the "keep" probability towards θ and spread it, so that a
    good share of the tokens (not all) falls below θ and is exchanged."""
    for s in range(num_stages):
        for m in range(M):
            net = f'score_predictor.{s}.score_nets.{m}.'
            sd[net + '7.weight'] *= 6.
            sd[net + '7.bias'] += torch.tensor([-4., 0.])


@contextlib.contextmanager
def storages_tagged_cuda():
    """Save as the release was saved: every storage's location is
    ``cuda:0`` (a plain ``torch.load`` then needs a GPU)."""
    from torch import serialization

    def tagger(storage):
        return 'cuda:0'

    serialization.register_package(0, tagger, lambda obj, location: None)
    try:
        yield
    finally:
        # (no public API unregisters a package)
        registry = serialization._package_registry
        registry[:] = [entry for entry in registry if entry[1] is not tagger]


def save_reference(layout, path):
    with storages_tagged_cuda():
        torch.save(layout.file_content(), path)
    return path


# --------------------------------------------------------------------------
# The reference forward
# --------------------------------------------------------------------------


def segmentation_names(sd):
    """The two naming differences from the segmentation reference undone
    (``lrnorm_{m}`` -> ``ln_{m}``; Mix-FFN's depthwise conv not wrapped in
    ModuleParallel), so that the MiT layers of ``reference_fixtures`` read
    the state."""
    renamed = {}
    for key, value in sd.items():
        key = key.replace('.lrnorm_', '.ln_')
        renamed[key.replace('.dwconv.dwconv.module.', '.dwconv.dwconv.')] = \
            value
    return renamed


def to_tokens(image):
    return image.flatten(2).transpose(1, 2)


def to_image(tokens, height, width):
    return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, height, width)


def ref_conv(x, sd, name, **kwargs):
    """ModuleParallel(nn.Conv2d): the same weights for every modality."""
    return F.conv2d(x, sd[f'{name}.module.weight'], sd[f'{name}.module.bias'],
                    **kwargs)


def ref_block(tokens, sd, name, hw, heads, sr, scores=None):
    """A MiT block over the modality list; with ``scores`` TokenFusion's
    exchange of the score-weighted attention updates (θ, own score)."""
    prefix = name + '.'
    height, width = hw
    updates = [
        ref_attention(
            ref_layer_norm(tokens[m], sd, prefix + 'norm1', m), sd, prefix, m,
            height, width, heads, sr) for m in range(M)
    ]
    if scores is not None:
        weighted = [updates[m] * scores[m].unsqueeze(-1) for m in range(M)]
        updates = []
        for m in range(M):
            update = weighted[m].clone()
            low = scores[m] < THETA
            update[low] = weighted[1 - m][low]
            updates.append(update)
    tokens = [tokens[m] + updates[m] for m in range(M)]
    return [
        tokens[m] + ref_mix_ffn(
            ref_layer_norm(tokens[m], sd, prefix + 'norm2', m), sd, prefix,
            height, width) for m in range(M)
    ]


def ref_encoder(sd, images, depths, fuse):
    """The 5 encoder stages: per-modality images -> per-stage token lists
    (after the stage norms), the last stage's images and, with ``fuse``,
    the scores of every stage's last block."""
    skips, scores = [], []
    for s, depth in enumerate(depths):
        hw = None
        tokens = []
        for m in range(M):
            y = ref_conv(
                images[m],
                sd,
                f'patch_embed_enc.{s}.proj',
                stride=2,
                padding=1)
            hw = y.shape[2:]
            tokens.append(
                ref_layer_norm(
                    to_tokens(y), sd, f'patch_embed_enc.{s}.norm', m))
        for b in range(depth):
            stage_scores = None
            if fuse and b == depth - 1:
                stage_scores = [
                    ref_score(tokens[m], sd, '', s, m) for m in range(M)
                ]
                scores.append(stage_scores)
            tokens = ref_block(tokens, sd, f'block_enc.{s}.{b}', hw, HEADS[s],
                               SR_RATIOS[s], stage_scores)
        tokens = [
            ref_layer_norm(tokens[m], sd, f'norm_enc.{s}', m) for m in range(M)
        ]
        skips.append(tokens)
        images = [to_image(t, *hw) for t in tokens]
    return skips, images, scores


def ref_upsample(image, sd, j, m, apply_norm=False):
    """PatchUpsample: PixelShuffle(2), then the shared 1x1 conv; its
    LayerNorm is never applied by the reference (``apply_norm``: what
    would change if it were)."""
    y = ref_conv(F.pixel_shuffle(image, 2), sd, f'patch_embed_dec.{j}.proj')
    tokens = to_tokens(y)
    if apply_norm:
        tokens = ref_layer_norm(tokens, sd, f'patch_embed_dec.{j}.norm', m)
    return tokens, y.shape[2:]


def reference_generator(sd,
                        sources,
                        encoder_depths,
                        decoder_depths,
                        apply_upsampler_norm=False):
    """The reference generator in eval mode on (B, M*3, H, W): the branch
    images, their softmax(alpha) ensemble and the per-stage scores."""
    sd = segmentation_names(sd)
    images = [sources[:, 3 * m:3 * (m + 1)] for m in range(M)]
    skips, images, scores = ref_encoder(sd, images, encoder_depths, True)
    for j, depth in enumerate(decoder_depths):
        s = 3 - j
        tokens = []
        for m in range(M):
            y, hw = ref_upsample(images[m], sd, j, m, apply_upsampler_norm)
            tokens.append(y + skips[s][m])
        for b in range(depth):
            tokens = ref_block(tokens, sd, f'block_dec.{j}.{b}', hw, HEADS[s],
                               SR_RATIOS[s])
        images = [
            to_image(ref_layer_norm(tokens[m], sd, f'norm_dec.{j}', m), *hw)
            for m in range(M)
        ]
    outputs = []
    for m in range(M):
        y, hw = ref_upsample(images[m], sd, 4, m, apply_upsampler_norm)
        outputs.append(torch.tanh(ref_conv(to_image(y, *hw), sd, 'project')))
    weights = F.softmax(sd['alpha'], dim=0)
    ensemble = sum(weights[m] * outputs[m] for m in range(M))
    return outputs, ensemble, scores


def reference_discriminator(sd, sources, targets, depths):
    """The reference discriminator: branch m judges its source with its
    target (source channels first), sigmoid patch maps."""
    sd = segmentation_names(sd)
    images = [
        torch.cat([sources[:, 3 * m:3 * (m + 1)], targets[m]], dim=1)
        for m in range(M)
    ]
    _, images, _ = ref_encoder(sd, images, depths, False)
    return [torch.sigmoid(ref_conv(image, sd, 'project')) for image in images]


# --------------------------------------------------------------------------
# Tiny checkpoints: conversion and forward
# --------------------------------------------------------------------------


def translator(meta):
    """The MultiStreamTranslator of a converted file's model config."""
    return MultiStreamTranslator(
        generator=dict(meta['model']['generator']),
        discriminator=dict(meta['model']['discriminator']))


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('translation_ckpt')
    gen = make_generator(RandomFill(0), **TINY)
    sharpen_predictors(gen.sd)
    dis = make_discriminator(
        RandomFill(1), TINY['embed_dims'], TINY['encoder_depths'])
    gen_path = save_reference(gen, str(tmp / 'checkpoint-gen-399.pkl'))
    dis_path = save_reference(dis, str(tmp / 'checkpoint-dis-399.pkl'))
    dst = str(tmp / 'out' / 'tokenfusion_translation_tiny.pth')
    meta = tool.main([gen_path, '--discriminator', dis_path, dst])
    return dict(
        tmp=tmp,
        gen=gen.sd,
        dis=dis.sd,
        gen_path=gen_path,
        dis_path=dis_path,
        dst=dst,
        meta=meta)


def test_converted_file(converted):
    if not torch.cuda.is_available():  # the files need map_location
        with pytest.raises(RuntimeError, match='CUDA'):
            torch.load(converted['gen_path'], weights_only=True)
    saved = torch.load(converted['dst'], weights_only=True)
    assert set(saved) == {'state_dict', 'meta'}
    meta = saved['meta']
    assert meta == converted['meta']
    assert meta['converter'] == ('tools/model_converters/'
                                 'tokenfusion_translation2mmseg.py')
    assert meta['converted_from'] == dict(
        generator=converted['gen_path'], discriminator=converted['dis_path'])
    assert meta['parts'] == ['generator', 'discriminator']
    assert meta['model'] == dict(
        generator=dict(
            type='FusedMiTGenerator',
            num_modalities=M,
            in_channels=3,
            out_channels=3,
            embed_dims=16,
            encoder_depths=[1, 1, 2, 1, 1],
            decoder_depths=[1, 1, 1, 1]),
        discriminator=dict(
            type='FusedMiTDiscriminator',
            num_streams=M,
            in_channels=6,
            embed_dims=16,
            depths=[1, 1, 2, 1, 1]))
    # the reference's default task, stream order as its input order
    assert meta['dataset_meta'] == dict(
        modalities=['reshading', 'edge_texture'],
        sources=['reshading', 'edge_texture'],
        target='rgb')
    # the 20 upsampler LayerNorm tensors the reference never applies
    assert meta['dropped'] == [
        f'module.patch_embed_dec.{j}.norm.lrnorm_{m}.{kind}' for j in range(5)
        for m in range(M) for kind in ('weight', 'bias')
    ]
    state = saved['state_dict']
    counts = meta['num_tensors']
    assert counts['generator']['reference'] == len(converted['gen'])
    assert counts['discriminator']['reference'] == len(converted['dis'])
    assert counts['generator']['dropped'] == 20
    assert counts['discriminator']['dropped'] == 0
    assert counts['total'] == len(state) == (
        counts['generator']['converted'] +
        counts['discriminator']['converted'])

    model = translator(meta)
    load_state_dict_exactly(model, saved, converted['dst'])
    assert list(state) == list(model.state_dict())
    # stacked rows are the modalities' tensors; shared tensors as they are
    gen, dis = converted['gen'], converted['dis']
    pairs = [
        ('generator.encoder.block3.1.norm2.weight', 1,
         gen['block_enc.2.1.norm2.lrnorm_1.weight']),
        ('generator.encoder.patch_embed5.norm.bias', 0,
         gen['patch_embed_enc.4.norm.lrnorm_0.bias']),
        ('generator.encoder.fusion_layers.0.score_predictors.3.fc3.bias', 1,
         gen['score_predictor.3.score_nets.1.5.bias']),
        ('generator.encoder.fusion_layers.0.score_predictors.0.norm.weight', 0,
         gen['score_predictor.0.score_nets.0.0.weight']),
        ('generator.decoder_norms.2.weight', 1,
         gen['norm_dec.2.lrnorm_1.weight']),
        ('generator.decoder.3.0.attn.norm.bias', 0,
         gen['block_dec.3.0.attn.norm.lrnorm_0.bias']),
        ('discriminator.encoder.norm5.weight', 1,
         dis['norm_enc.4.lrnorm_1.weight']),
    ]
    for key, row, value in pairs:
        assert torch.equal(state[key][row], value), key
    same = [
        ('generator.encoder.block3.0.mlp.dwconv.weight',
         gen['block_enc.2.0.mlp.dwconv.dwconv.module.weight']),
        ('generator.upsamples.0.proj.weight',
         gen['patch_embed_dec.0.proj.module.weight']),
        ('generator.final_upsample.proj.bias',
         gen['patch_embed_dec.4.proj.module.bias']),
        ('generator.decoder.1.0.attn.kv.weight',
         gen['block_dec.1.0.attn.kv.module.weight']),
        ('generator.project.weight', gen['project.module.weight']),
        ('generator.alpha', gen['alpha']),
        ('discriminator.head.weight', dis['project.module.weight']),
        ('discriminator.encoder.patch_embed1.proj.weight',
         dis['patch_embed_enc.0.proj.module.weight']),
    ]
    for key, value in same:
        assert torch.equal(state[key], value), key


def test_generator_matches_reference_forward(converted):
    saved = torch.load(converted['dst'], weights_only=True)
    model = translator(saved['meta'])
    load_state_dict_exactly(model, saved, converted['dst'])
    model.eval()
    generator = model.generator
    layer = generator.encoder.fusion_layers[0]
    assert layer.threshold == THETA and layer.variant == 'attention'
    sources = torch.rand(
        2, 3 * M, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    sources = sources * 2 - 1
    with torch.no_grad():
        images = generator(sources)
        ensemble = generator.ensemble(images)
        ref_images, ref_ensemble, ref_scores = reference_generator(
            converted['gen'], sources, TINY['encoder_depths'],
            TINY['decoder_depths'])
        with_norm, _, _ = reference_generator(
            converted['gen'],
            sources,
            TINY['encoder_depths'],
            TINY['decoder_depths'],
            apply_upsampler_norm=True)

    # tokens really are exchanged, in both streams, but not all of them
    for m in range(M):
        below = torch.cat([(scores[m] < THETA).flatten()
                           for scores in ref_scores]).float().mean()
        assert 0.05 < below < 0.95, (m, below)
    # one score map per stage (its last block), as the reference
    assert len(layer.scores) == len(ref_scores) == 5
    for ours, theirs in zip(layer.scores, ref_scores):
        torch.testing.assert_close(
            ours, torch.stack(theirs), rtol=0, atol=1e-5)

    assert images.shape == (M, 2, 3, SIZE, SIZE)
    for m in range(M):
        torch.testing.assert_close(images[m], ref_images[m], rtol=0, atol=1e-4)
    torch.testing.assert_close(ensemble, ref_ensemble, rtol=0, atol=1e-4)
    # alpha is not uniform: the ensemble is not the mean
    assert (ensemble - images.mean(0)).abs().max() > 1e-3
    # applying the upsamplers' LayerNorms would change the images
    assert (with_norm[0] - ref_images[0]).abs().max() > 0.1


def test_discriminator_matches_reference_forward(converted):
    saved = torch.load(converted['dst'], weights_only=True)
    model = translator(saved['meta'])
    load_state_dict_exactly(model, saved, converted['dst'])
    model.eval()
    rng = torch.Generator().manual_seed(6)
    sources = torch.rand(2, 3 * M, SIZE, SIZE, generator=rng) * 2 - 1
    real = torch.rand(2, 3, SIZE, SIZE, generator=rng) * 2 - 1
    with torch.no_grad():
        fake = model.generator(sources)
        for targets in (real.expand(M, *real.shape), fake):
            ours = model.discriminator(pair_inputs(sources, targets, M))
            theirs = reference_discriminator(converted['dis'], sources,
                                             targets, TINY['encoder_depths'])
            assert ours.shape == (M, 2, 1, SIZE // 32, SIZE // 32)
            for m in range(M):
                torch.testing.assert_close(
                    ours[m], theirs[m], rtol=0, atol=1e-4)


def test_generator_only(converted, tmp_path):
    dst = str(tmp_path / 'generator_only.pth')
    meta = tool.main([converted['gen_path'], dst])
    saved = torch.load(dst, weights_only=True)
    assert meta['parts'] == ['generator']
    assert set(meta['model']) == {'generator'}
    assert all(k.startswith('generator.') for k in saved['state_dict'])
    assert len(saved['state_dict']) == \
        meta['num_tensors']['generator']['converted']
    model = translator(converted['meta'])
    load_state_dict_exactly(model.generator,
                            unwrap_state_dict(saved, dst, prefix='generator.'),
                            dst)


def test_modality_names(converted, tmp_path):
    meta = tool.main([
        converted['gen_path'],
        str(tmp_path / 'named.pth'), '--modalities', 'edge_texture',
        'depth_euclidean', '--target', 'normal'
    ])
    assert meta['dataset_meta'] == dict(
        modalities=['edge_texture', 'depth_euclidean'],
        sources=['edge_texture', 'depth_euclidean'],
        target='normal')
    with pytest.raises(SystemExit, match='expected 2 distinct names'):
        tool.main([
            converted['gen_path'],
            str(tmp_path / 'one.pth'), '--modalities', 'rgb'
        ])


# --------------------------------------------------------------------------
# Errors: each names the file and the key
# --------------------------------------------------------------------------


def check_error(tmp, content, *expected, part='gen', converted=None):
    """Saving ``content`` as the generator (or discriminator) file, the
    CLI exits naming that file and every ``expected`` string, and writes
    nothing."""
    bad = str(tmp / f'bad-{part}.pkl')
    if isinstance(content, bytes):
        with open(bad, 'wb') as f:
            f.write(content)
    else:
        torch.save(content, bad)
    dst = str(tmp / 'bad_out.pth')
    argv = [bad, dst] if part == 'gen' else [
        converted['gen_path'], '--discriminator', bad, dst
    ]
    with pytest.raises(SystemExit) as error:
        tool.main(argv)
    message = str(error.value)
    assert bad in message, message
    for text in expected:
        assert text in message, (text, message)
    assert not osp.exists(dst)
    return message


def reference_content(sd):
    return OrderedDict(('module.' + k, v) for k, v in sd.items())


def test_unknown_key(converted, tmp_path):
    content = reference_content(converted['gen'])
    content['module.block_enc.0.0.attn.extra.module.weight'] = torch.ones(2)
    content['module.patch_embed_dec.5.proj.module.bias'] = torch.ones(2)
    check_error(tmp_path, content, 'without a place in the model',
                'block_enc.0.0.attn.extra.module.weight',
                'patch_embed_dec.5.proj.module.bias')
    # a third modality in one norm only
    content = reference_content(converted['dis'])
    content['module.norm_enc.3.lrnorm_2.weight'] = torch.ones(128)
    check_error(
        tmp_path,
        content,
        'norm_enc.3.lrnorm_2.weight',
        part='dis',
        converted=converted)


def test_missing_key(converted, tmp_path):
    content = reference_content(converted['gen'])
    del content['module.block_dec.1.0.attn.q.module.weight']
    del content['module.score_predictor.2.score_nets.1.3.bias']
    del content['module.norm_enc.1.lrnorm_1.weight']
    message = check_error(tmp_path, content, '3 key(s) missing',
                          'block_dec.1.0.attn.q.module.weight',
                          'score_predictor.2.score_nets.1.3.bias',
                          'norm_enc.1.lrnorm_1.weight')
    assert 'without a place' not in message
    # the never-applied norms belong to the reference's layout too
    content = reference_content(converted['gen'])
    del content['module.patch_embed_dec.3.norm.lrnorm_0.bias']
    check_error(tmp_path, content, 'patch_embed_dec.3.norm.lrnorm_0.bias')
    # the discriminator's head
    content = reference_content(converted['dis'])
    del content['module.project.module.bias']
    check_error(
        tmp_path,
        content,
        'project.module.bias',
        part='dis',
        converted=converted)


def test_wrong_shape(converted, tmp_path):
    content = reference_content(converted['gen'])
    content['module.block_enc.2.1.mlp.fc1.module.weight'] = torch.ones(3, 64)
    content['module.norm_dec.0.lrnorm_1.bias'] = torch.ones(7)
    check_error(
        tmp_path, content, 'of another shape',
        'block_enc.2.1.mlp.fc1.module.weight: (3, 64), expected '
        '(256, 64)', 'norm_dec.0.lrnorm_1.bias: (7,), expected (128,)')
    # a discriminator of another stream count than the generator
    dis = make_discriminator(
        RandomFill(3),
        TINY['embed_dims'],
        TINY['encoder_depths'],
        num_modalities=3)
    check_error(
        tmp_path,
        dis.file_content(),
        '3 streams',
        converted['gen_path'],
        part='dis',
        converted=converted)


def test_not_a_checkpoint(converted, tmp_path):
    check_error(tmp_path, b'not a checkpoint\n',
                'not a checkpoint torch.load reads')
    check_error(tmp_path, [1, 2], 'expected a state dict, got list')
    check_error(tmp_path, b'', part='dis', converted=converted)
    # a segmentation checkpoint
    check_error(tmp_path, dict(segmenter=reference_content(converted['gen'])),
                'segmenter')


# --------------------------------------------------------------------------
# The release's size: every tensor has its place, exactly
# --------------------------------------------------------------------------


def first(tensor):
    """The first element (of a stride-0 view too, without copying it)."""
    return float(tensor[(0, ) * tensor.dim()])


def test_release_size_maps_every_tensor(tmp_path):
    fill = TaggedFill()
    gen = make_generator(fill, **RELEASE)
    dis = make_discriminator(fill, RELEASE['embed_dims'],
                             RELEASE['encoder_depths'])
    assert len(gen.sd) == 1143 and len(dis.sd) == 554
    # one stored element per tensor
    gen_path = save_reference(gen, str(tmp_path / 'checkpoint-gen-399.pkl'))
    dis_path = save_reference(dis, str(tmp_path / 'checkpoint-dis-399.pkl'))
    assert osp.getsize(gen_path) < 2e6
    dst = str(tmp_path / 'release.pth')
    meta = tool.main([gen_path, '--discriminator', dis_path, dst])
    assert meta['num_tensors']['generator'] == dict(
        reference=1143, dropped=20, converted=829)
    assert meta['num_tensors']['discriminator'] == dict(
        reference=554, dropped=0, converted=420)
    assert round(meta['num_parameters']['generator'] / 1e6, 1) == 131.1
    assert round(meta['num_parameters']['discriminator'] / 1e6, 1) == 85.3
    assert meta['model']['generator']['encoder_depths'] == [3, 4, 4, 6, 3]
    assert meta['model']['generator']['decoder_depths'] == [6, 4, 4, 3]

    saved = torch.load(dst, weights_only=True)
    # the Taskonomy config's translator is the release's: strict load,
    # equal shapes; its streams are the recorded sources
    cfg = Config.fromfile(TASKONOMY_CONFIG)
    model = MODELS.build(cfg.model)
    load_state_dict_exactly(model, saved, dst)
    assert list(model.stream_names) == meta['dataset_meta']['sources'] == \
        list(cfg.train_dataloader.dataset.sources)
    assert meta['dataset_meta'][
        'target'] == cfg.train_dataloader.dataset.target

    # Every reference tensor but the dropped ones fills exactly one slot
    # (a tensor, or a row of a stacked one) of the model, and every slot is
    # filled: the tags (a reference tensor's index) of the converted
    # tensors are those of the reference, each once.
    names = {}
    for part, layout in (('generator', gen), ('discriminator', dis)):
        for key, value in layout.sd.items():
            names[first(value)] = (part, key)
    dropped = re.compile(r'patch_embed_dec\.\d\.norm\.lrnorm_\d\.\w+')
    expected = sorted(tag for tag, (part, key) in names.items()
                      if not dropped.fullmatch(key))
    tags, origin = [], {}
    for key, value in saved['state_dict'].items():
        part = key.split('.')[0]
        rows = [first(row) for row in value] if value.dim() else []
        if len(set(rows)) > 1:
            # a stacked tensor: row m is the reference's modality m
            assert len(rows) == M, key
            for m, (row, tag) in enumerate(zip(value, rows)):
                assert row.amin() == row.amax() == tag, key
                reference = names[tag][1]
                assert f'lrnorm_{m}.' in reference or \
                    f'score_nets.{m}.' in reference, (key, reference)
        else:
            # one reference tensor, as it is
            rows = [first(value)]
            assert value.amin() == value.amax() == rows[0], key
        assert {names[tag][0] for tag in rows} == {part}, key
        tags += rows
        origin[key] = names[rows[0]][1]
    assert sorted(tags) == expected
    # the parts the two layouts name differently
    assert origin['generator.final_upsample.proj.weight'] == \
        'patch_embed_dec.4.proj.module.weight'
    assert origin['generator.upsamples.0.proj.weight'] == \
        'patch_embed_dec.0.proj.module.weight'
    assert origin['generator.encoder.norm5.weight'] == \
        'norm_enc.4.lrnorm_0.weight'
    assert origin['generator.decoder.0.5.mlp.dwconv.bias'] == \
        'block_dec.0.5.mlp.dwconv.dwconv.module.bias'
    assert origin['generator.encoder.fusion_layers.0.score_predictors.4.'
                  'fc4.weight'] == 'score_predictor.4.score_nets.0.7.weight'
    assert origin['discriminator.head.bias'] == 'project.module.bias'
