"""Reference-layout checkpoints and a functional reference forward of the
two-stream MiT of the TokenFusion / GeminiFusion code bases (``WeTr``),
and a single-modal ImageNet MiT file (NVlabs names).

Shared by ``test_tokenfusion_checkpoints.py``,
``test_geminifusion_checkpoints.py`` and the backbone tests that initialise
from an ImageNet MiT. Everything here is written from the reference code's
behaviour as documented in docs/tokenfusion.md and docs/geminifusion.md:
the reference's own parameter names, lists of per-modality tensors,
explicit loops over modalities. It shares no code with ``projects/``.
"""
import json
import os.path as osp
import re
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine import Config
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS

from ..utils import REPO_ROOT, tiny_options, tool

# the tiny reference model of the checkpoint tests: the demo configs' MiT
# with 2 blocks in stage 1, head width E = 32, K classes, M modalities
M = 2
DIMS = [16, 32, 64, 128]
DEPTHS = [2, 1, 1, 1]
HEADS = [1, 2, 4, 8]
SR_RATIOS = [8, 4, 2, 1]
E = 32
K = 5
# FusedMiT arguments of that MiT (with the demo configs' defaults)
TINY_MIT = dict(
    embed_dims=16,
    num_layers=DEPTHS,
    num_heads=HEADS,
    sr_ratios=SR_RATIOS,
    drop_path_rate=0.)


class RandomTensors:
    """Seeded random tensors of sensible scale."""

    def __init__(self, seed):
        self.generator = torch.Generator().manual_seed(seed)

    def normal(self, *shape, std=1.):
        return torch.randn(*shape, generator=self.generator) * std

    def uniform(self, *shape, low=0., high=1.):
        return low + (high - low) * torch.rand(
            *shape, generator=self.generator)

    def weight(self, out, fan_in, *kernel):
        return self.normal(out, fan_in, *kernel, std=fan_in**-0.5)

    def norm(self, channels):
        return 1 + self.normal(
            channels, std=0.2), self.normal(
                channels, std=0.1)


def add_mit_encoder(sd,
                    rnd,
                    dims,
                    depths,
                    sr_ratios,
                    num_modalities,
                    attn_extra=None,
                    embed_modalities=None):
    """Add the ``encoder.*`` tensors of the reference two-stream MiT to
    ``sd`` in the reference's module order: ModuleParallel layers
    (``.module.``), LayerNormParallel norms (``ln_{m}``), Mix-FFN
    ``dwconv.dwconv``.

    Args:
        attn_extra (callable, optional): ``attn_extra(prefix, channels)``
            adds the fusion tensors of a block's attention (``prefix`` ends
            with ``attn.``), after the attention's own layers.
        embed_modalities (int, optional): ``ln_{m}`` copies of the
            patch-embed norms (DeLiVER branch); default ``num_modalities``.
    """

    def parallel_linear(name, out, inp):  # ModuleParallel(nn.Linear)
        sd[f'{name}.module.weight'] = rnd.weight(out, inp)
        sd[f'{name}.module.bias'] = rnd.normal(out, std=0.1)

    def parallel_conv(name, out, inp, kernel):  # ModuleParallel(nn.Conv2d)
        sd[f'{name}.module.weight'] = rnd.normal(
            out, inp, kernel, kernel, std=(inp * kernel**2)**-0.5)
        sd[f'{name}.module.bias'] = rnd.normal(out, std=0.1)

    def parallel_norm(name, channels, copies=num_modalities):
        for m in range(copies):  # LayerNormParallel
            weight, bias = rnd.norm(channels)
            sd[f'{name}.ln_{m}.weight'] = weight
            sd[f'{name}.ln_{m}.bias'] = bias

    for s in range(1, 5):
        c_in = 3 if s == 1 else dims[s - 2]
        parallel_conv(f'encoder.patch_embed{s}.proj', dims[s - 1], c_in,
                      7 if s == 1 else 3)
        parallel_norm(f'encoder.patch_embed{s}.norm', dims[s - 1],
                      embed_modalities or num_modalities)
    for s in range(1, 5):
        c, sr = dims[s - 1], sr_ratios[s - 1]
        for j in range(depths[s - 1]):
            block = f'encoder.block{s}.{j}.'
            parallel_norm(block + 'norm1', c)
            parallel_linear(block + 'attn.q', c, c)
            parallel_linear(block + 'attn.kv', 2 * c, c)
            parallel_linear(block + 'attn.proj', c, c)
            if sr > 1:
                parallel_conv(block + 'attn.sr', c, c, sr)
                parallel_norm(block + 'attn.norm', c)
            if attn_extra is not None:
                attn_extra(block + 'attn.', c)
            parallel_norm(block + 'norm2', c)
            parallel_linear(block + 'mlp.fc1', 4 * c, c)
            # DWConv is not wrapped in ModuleParallel
            sd[block + 'mlp.dwconv.dwconv.weight'] = rnd.normal(
                4 * c, 1, 3, 3, std=1 / 3)
            sd[block + 'mlp.dwconv.dwconv.bias'] = rnd.normal(4 * c, std=0.1)
            parallel_linear(block + 'mlp.fc2', c, 4 * c)
        parallel_norm(f'encoder.norm{s}', c)


def add_segformer_head(sd, rnd, dims, channels, num_classes):
    """Add the ``decoder.*`` tensors of the NVlabs SegFormerHead."""
    for i, dim in enumerate(dims):
        sd[f'decoder.linear_c{i + 1}.proj.weight'] = rnd.weight(channels, dim)
        sd[f'decoder.linear_c{i + 1}.proj.bias'] = rnd.normal(
            channels, std=0.1)
    sd['decoder.linear_fuse.conv.weight'] = rnd.weight(channels, 4 * channels,
                                                       1, 1)
    weight, bias = rnd.norm(channels)
    sd['decoder.linear_fuse.bn.weight'] = weight
    sd['decoder.linear_fuse.bn.bias'] = bias
    sd['decoder.linear_fuse.bn.running_mean'] = rnd.normal(channels, std=0.5)
    sd['decoder.linear_fuse.bn.running_var'] = rnd.uniform(
        channels, low=0.3, high=2.)
    sd['decoder.linear_fuse.bn.num_batches_tracked'] = torch.tensor(1234)
    sd['decoder.linear_pred.weight'] = rnd.weight(num_classes, channels, 1, 1)
    sd['decoder.linear_pred.bias'] = rnd.normal(num_classes, std=0.1)


def make_nvlabs_mit(seed=2):
    """An ImageNet MiT of the tiny shapes in NVlabs SegFormer names
    (``mit_b*.pth``: ``patch_embed{s}``, ``block{s}.{j}``, ``norm{s}``,
    Mix-FFN ``mlp.dwconv.dwconv``, classifier ``head``)."""
    rnd = RandomTensors(seed)
    sd = OrderedDict()

    def layer(name, *shape):
        sd[f'{name}.weight'] = rnd.normal(*shape, std=0.2)
        sd[f'{name}.bias'] = rnd.normal(shape[0], std=0.1)

    def norm(name, channels):
        sd[f'{name}.weight'], sd[f'{name}.bias'] = rnd.norm(channels)

    for s in range(1, 5):
        c_in = 3 if s == 1 else DIMS[s - 2]
        k = 7 if s == 1 else 3
        layer(f'patch_embed{s}.proj', DIMS[s - 1], c_in, k, k)
        norm(f'patch_embed{s}.norm', DIMS[s - 1])
    for s in range(1, 5):
        c, sr = DIMS[s - 1], SR_RATIOS[s - 1]
        for j in range(DEPTHS[s - 1]):
            block = f'block{s}.{j}.'
            norm(block + 'norm1', c)
            layer(block + 'attn.q', c, c)
            layer(block + 'attn.kv', 2 * c, c)
            layer(block + 'attn.proj', c, c)
            if sr > 1:
                layer(block + 'attn.sr', c, c, sr, sr)
                norm(block + 'attn.norm', c)
            norm(block + 'norm2', c)
            layer(block + 'mlp.fc1', 4 * c, c)
            layer(block + 'mlp.dwconv.dwconv', 4 * c, 1, 3, 3)
            layer(block + 'mlp.fc2', c, 4 * c)
        norm(f'norm{s}', c)
    layer('head', 10, DIMS[-1])
    return sd


def reference_file_content(state):
    """What the main-branch reference ``Saver`` writes (DataParallel
    prefix ``module.``)."""
    return {
        'segmenter': OrderedDict(('module.' + k, v) for k, v in state.items()),
        'epoch_start': 3,
        'best_val': 0.5
    }


def ref_layer_norm(x, sd, name, m):
    """LayerNormParallel: modality m's own nn.LayerNorm(eps=1e-6)."""
    return F.layer_norm(x, x.shape[-1:], sd[f'{name}.ln_{m}.weight'],
                        sd[f'{name}.ln_{m}.bias'], 1e-6)


def ref_linear(x, sd, name):
    """ModuleParallel(nn.Linear): the same weights for every modality."""
    return F.linear(x, sd[f'{name}.module.weight'], sd[f'{name}.module.bias'])


def ref_patch_embed(x, sd, stage, m):
    """OverlapPatchEmbed of stage ``stage`` (1..4) for modality m:
    (B, C_in, H, W) -> tokens (B, N, C), H', W'."""
    embed = f'encoder.patch_embed{stage}.'
    kernel, stride = (7, 4) if stage == 1 else (3, 2)
    y = F.conv2d(
        x,
        sd[embed + 'proj.module.weight'],
        sd[embed + 'proj.module.bias'],
        stride=stride,
        padding=kernel // 2)
    height, width = y.shape[2:]
    tokens = ref_layer_norm(
        y.flatten(2).transpose(1, 2), sd, embed + 'norm', m)
    return tokens, height, width


def ref_score(x, sd, prefix, stage, m):
    """The reference's PredictorLG: modality m's score net of ``stage``
    (keys ``{prefix}score_predictor.{stage}.score_nets.{m}.*``) on the
    block input, log-softmax then softmax, channel 0: (B, N, C) -> (B, N).
    """
    net = f'{prefix}score_predictor.{stage}.score_nets.{m}.'
    h = F.layer_norm(x, x.shape[-1:], sd[net + '0.weight'], sd[net + '0.bias'],
                     1e-5)
    for index in (1, 3, 5):
        h = F.gelu(
            F.linear(h, sd[f'{net}{index}.weight'], sd[f'{net}{index}.bias']))
    logits = F.linear(h, sd[net + '7.weight'], sd[net + '7.bias'])
    return F.softmax(F.log_softmax(logits, dim=-1), dim=-1)[..., 0]


def ref_attention(x, sd, block, m, height, width, heads, sr, project=True):
    """Spatial-reduction attention of modality m (keys / values from m);
    ``project=False``: the output before the shared ``attn.proj``."""
    b, n, c = x.shape
    d = c // heads
    q = ref_linear(x, sd, block + 'attn.q').reshape(b, n, heads,
                                                    d).permute(0, 2, 1, 3)
    if sr > 1:
        reduced = x.permute(0, 2, 1).reshape(b, c, height, width)
        reduced = F.conv2d(
            reduced,
            sd[block + 'attn.sr.module.weight'],
            sd[block + 'attn.sr.module.bias'],
            stride=sr)
        reduced = reduced.reshape(b, c, -1).permute(0, 2, 1)
        reduced = ref_layer_norm(reduced, sd, block + 'attn.norm', m)
    else:
        reduced = x
    kv = ref_linear(reduced, sd, block + 'attn.kv')
    kv = kv.reshape(b, -1, 2, heads, d).permute(2, 0, 3, 1, 4)
    k, v = kv[0], kv[1]
    weights = (q @ k.transpose(-2, -1)) * d**-0.5
    weights = weights.softmax(dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(b, n, c)
    return ref_linear(out, sd, block + 'attn.proj') if project else out


def ref_mix_ffn(x, sd, block, height, width):
    """fc1 -> 3x3 depthwise conv -> GELU -> fc2."""
    h = ref_linear(x, sd, block + 'mlp.fc1')
    b, n, c = h.shape
    h = h.transpose(1, 2).reshape(b, c, height, width)
    h = F.conv2d(
        h,
        sd[block + 'mlp.dwconv.dwconv.weight'],
        sd[block + 'mlp.dwconv.dwconv.bias'],
        padding=1,
        groups=c)
    h = F.gelu(h.flatten(2).transpose(1, 2))
    return ref_linear(h, sd, block + 'mlp.fc2')


def ref_head(sd, pyramid):
    """NVlabs SegFormerHead (eval): linear_c per level, upsample to c1,
    concat [c4, c3, c2, c1], 1x1 conv, BN, ReLU, linear_pred."""
    size = pyramid[0].shape[2:]
    embedded = []
    for i, feat in enumerate(pyramid):
        b, _, h, w = feat.shape
        y = F.linear(
            feat.flatten(2).transpose(1, 2),
            sd[f'decoder.linear_c{i + 1}.proj.weight'],
            sd[f'decoder.linear_c{i + 1}.proj.bias'])
        y = y.permute(0, 2, 1).reshape(b, -1, h, w)
        if i > 0:
            y = F.interpolate(
                y, size=size, mode='bilinear', align_corners=False)
        embedded.append(y)
    y = torch.cat([embedded[3], embedded[2], embedded[1], embedded[0]], dim=1)
    y = F.conv2d(y, sd['decoder.linear_fuse.conv.weight'])
    y = F.batch_norm(
        y,
        sd['decoder.linear_fuse.bn.running_mean'],
        sd['decoder.linear_fuse.bn.running_var'],
        sd['decoder.linear_fuse.bn.weight'],
        sd['decoder.linear_fuse.bn.bias'],
        training=False,
        eps=1e-5)
    y = F.relu(y)
    return F.conv2d(y, sd['decoder.linear_pred.weight'],
                    sd['decoder.linear_pred.bias'])


def ref_ensemble(sd, logits):
    """softmax(alpha)-weighted sum of the streams' logits."""
    weights = F.softmax(sd['alpha'], dim=0)
    return sum(weights[m] * logits[m] for m in range(len(logits)))


def build_segmentor(config):
    """The model of a config file, built as ``tools/train.py`` builds it:
    in mmseg's scope, with the plugin's modules registered."""
    import projects.multimodal_seg  # noqa: F401  (registers the modules)
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(Config.fromfile(config).model)


def check_cli_error_names_the_file(main, content, tmp_dir):
    """A converter CLI (``main(argv)``) given a reference file ``content``
    with an unknown key, and then a file that is no checkpoint, exits with
    a message naming the file (and the key) and writes nothing."""
    content['segmenter']['module.encoder.extra.bias'] = torch.zeros(1)
    bad, out = str(tmp_dir / 'bad.pth.tar'), str(tmp_dir / 'bad_out.pth')
    torch.save(content, bad)
    with pytest.raises(SystemExit, match=re.escape(bad)) as error:
        main([bad, out])
    assert 'encoder.extra.bias' in str(error.value)
    assert not osp.exists(out)
    torch.save([1, 2], bad)
    with pytest.raises(SystemExit, match=re.escape(bad)):
        main([bad, out])
    assert not osp.exists(out)


def check_tools_with_converted_checkpoint(converted):
    """The standard tools with a converted checkpoint (the ``converted``
    fixture of a converter test: ``config``, ``dst``, ``tmp``):

    * ``tools/test.py CONFIG CKPT`` loads it without mismatch and evaluates
      the synthetic set;
    * ``MultiModalSegInferencer`` accepts it (the converter recorded the
      modalities), takes the classes of the config's dataset (the official
      files name none) and predicts as the strictly loaded model.

    Returns the test log."""
    tmp = converted['tmp']
    metrics_file = osp.join(tmp, 'metrics.json')
    log = tool(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools/test.py'), converted['config'],
            converted['dst'], '--work-dir',
            osp.join(tmp, 'test_work'), '--metrics-json', metrics_file,
            '--cfg-options'
        ] + tiny_options(osp.join(tmp, 'synthetic'), 1),
        cwd=REPO_ROOT)
    assert f'Load checkpoint from {converted["dst"]}' in log
    # mmengine loads non-strictly and only warns on mismatches
    assert 'do not match exactly' not in log, log[-4000:]
    with open(metrics_file) as f:
        metrics = json.load(f)
    assert {'aAcc', 'mIoU', 'mAcc'} <= set(metrics)
    assert 0 <= metrics['mIoU'] <= 100

    from mmseg.structures import SegDataSample

    from projects.multimodal_seg.apis import MultiModalSegInferencer
    from projects.multimodal_seg.datasets import SyntheticRGBDDataset
    inferencer = MultiModalSegInferencer(
        converted['config'], weights=converted['dst'], device='cpu')
    assert inferencer.model.dataset_meta['classes'] == \
        SyntheticRGBDDataset.METAINFO['classes']
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    depth = rng.integers(500, 8000, (64, 64), dtype=np.uint16)
    result = inferencer(dict(rgb=rgb, depth=depth), return_datasamples=True)
    model = build_segmentor(converted['config'])
    model.load_state_dict(
        torch.load(converted['dst'], weights_only=True)['state_dict'],
        strict=True)
    model.eval()
    packed = torch.from_numpy(
        np.concatenate([rgb, depth[..., None]],
                       axis=2).astype(np.float32)).permute(2, 0, 1)
    sample = SegDataSample(
        metainfo=dict(
            img_shape=(64, 64),
            ori_shape=(64, 64),
            modalities=('rgb', 'depth')))
    with torch.no_grad():
        expected = model.test_step(
            dict(inputs=[packed], data_samples=[sample]))[0]
    torch.testing.assert_close(
        result.seg_logits.data, expected.seg_logits.data, rtol=0, atol=1e-5)
    return log
