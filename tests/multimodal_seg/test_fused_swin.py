"""The fused Swin with a GeminiFusion layer (GeminiFusion's Swin backbone):
placement of the fusion in the mmseg block,
parameter count of the reference, ImageNet (Microsoft / mmseg) init and the
official GeminiFusion Swin checkpoint conversion against an independent
two-stream reference forward (per-stream lists, per-batch
``nn.MultiheadAttention`` loop, Microsoft window / merging code paths)."""
import copy
import os.path as osp
import sys
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmseg.models.backbones.swin import SwinTransformer
from mmseg.registry import MODELS

from projects.multimodal_seg.models.backbones.fused_swin import (
    FusedSwin, FuseThenDropPath, resize_relative_position_table)
from projects.multimodal_seg.models.backbones.swin_checkpoint import (
    merging_to_unfold_order, swin_to_mmseg)
from tools.model_converters import geminifusion2mmseg
from tools.model_converters.reference_keys import GEMINI_PARAMS
from tools.model_converters.swin_reference_keys import (
    FUSION_PATH, convert_geminifusion_swin_reference)
from ..utils import REPO_ROOT, tiny_options, tool

TINY_CONFIG = osp.join(
    REPO_ROOT, 'configs/geminifusion/'
    'geminifusion_swin-tiny_1xb8-1k_synthetic-rgbd-64x64.py')
TINY = dict(
    embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), window=4)
# the reference's GeminiFusion Swin: after the window attention
GEMINI = dict(type='GeminiFusion', heads=8, point='fuse_attention_output')


def tiny_swin(**kwargs):
    args = dict(
        embed_dims=TINY['embed_dims'],
        depths=TINY['depths'],
        num_heads=TINY['num_heads'],
        window_size=TINY['window'],
        drop_path_rate=0.,
        fusion=GEMINI)
    args.update(kwargs)
    return FusedSwin(**args)


def fusion_module(model, stage, block):
    """The GeminiFusion module of block ``block`` of stage ``stage``."""
    return model.fusion_layers[0].sites[str(stage)][str(block)]


# --------------------------------------------------------------------------
# independent reference (Microsoft Swin / GeminiFusion main-branch maths)
# --------------------------------------------------------------------------
def microsoft_relative_index(window):
    coords = torch.stack(
        torch.meshgrid(
            torch.arange(window), torch.arange(window),
            indexing='ij')).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    rel = rel + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def shift_mask(hp, wp, window, shift):
    img = torch.zeros(1, hp, wp, 1)
    cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    cnt = 0
    for h in cuts:
        for w in cuts:
            img[:, h, w, :] = cnt
            cnt += 1
    win = img.view(1, hp // window, window, wp // window, window, 1)
    win = win.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window)
    diff = win[:, None, :] - win[:, :, None]
    return diff.masked_fill(diff != 0, -100.).masked_fill(diff == 0, 0.)


def ms_window_attention(x, p, pre, heads, window, shift, hw):
    """Microsoft SwinTransformerBlock attention part on one stream:
    x (B, H*W, C) after norm1 -> (B, H*W, C) after crop."""
    b, _, c = x.shape
    h, w = hw
    x = x.view(b, h, w, c)
    x = F.pad(x, (0, 0, 0, (window - w % window) % window, 0,
                  (window - h % window) % window))
    hp, wp = x.shape[1:3]
    if shift:
        x = torch.roll(x, (-shift, -shift), (1, 2))
    win = x.view(b, hp // window, window, wp // window, window, c)
    win = win.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)
    n = window * window
    qkv = F.linear(win, p[pre + 'attn.qkv.weight'], p[pre + 'attn.qkv.bias'])
    q, k, v = qkv.reshape(-1, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    attn = (q * (c // heads)**-0.5) @ k.transpose(-2, -1)
    table = p[pre + 'attn.relative_position_bias_table']
    bias = table[microsoft_relative_index(window).view(-1)].view(n, n, -1)
    attn = attn + bias.permute(2, 0, 1)[None]
    if shift:
        mask = shift_mask(hp, wp, window, shift)
        attn = attn.view(-1, mask.shape[0], heads, n, n) + mask[None, :, None]
        attn = attn.view(-1, heads, n, n)
    out = (attn.softmax(-1) @ v).transpose(1, 2).reshape(-1, n, c)
    out = F.linear(out, p[pre + 'attn.proj.weight'], p[pre + 'attn.proj.bias'])
    out = out.view(b, hp // window, wp // window, window, window, c)
    out = out.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
    if shift:
        out = torch.roll(out, (shift, shift), (1, 2))
    return out[:, :h, :w].reshape(b, h * w, c)


def reference_fusion(xs, p, pre, c):
    """The reference's per-batch loop over nn.MultiheadAttention."""
    mhas = []
    for name in ('cross_attn_0_to_1', 'cross_attn_1_to_0'):
        mha = nn.MultiheadAttention(c, 8)
        mha.in_proj_weight.data = p[f'{pre}{name}.in_proj_weight']
        mha.in_proj_bias.data = p[f'{pre}{name}.in_proj_bias']
        mha.out_proj.weight.data = p[f'{pre}{name}.out_proj.weight']
        mha.out_proj.bias.data = p[f'{pre}{name}.out_proj.bias']
        mhas.append(mha)

    def judge(a):
        hidden = F.gelu(
            F.linear(a, p[pre + 'relation_judger.0.fc1.weight'],
                     p[pre + 'relation_judger.0.fc1.bias']))
        return F.linear(hidden, p[pre + 'relation_judger.0.fc2.weight'],
                        p[pre + 'relation_judger.0.fc2.bias']).softmax(-1)

    outs = [[], []]
    for bs in range(xs[0].shape[0]):
        for m in (0, 1):
            s, t = xs[m][bs][None], xs[1 - m][bs][None]
            r = judge(torch.cat([s, t], -1))
            k = torch.cat([p[pre + 'k_noise.weight'][m] + s, s * r], dim=0)
            v = torch.cat([p[pre + 'v_noise.weight'][m] + s, t], dim=0)
            outs[m].append(xs[m][bs] + mhas[m](s, k, v)[0].squeeze(0))
    return [torch.stack(o) for o in outs]


def reference_forward(p, norms, streams, fuse):
    """Two-stream GeminiFusion Swin on plain (Microsoft) names ``p`` and
    per-stream norms ``norms[name][m] = (weight, bias)``; eval mode."""
    window, heads = TINY['window'], TINY['num_heads']
    xs = []
    for m, x in enumerate(streams):
        x = F.pad(x, (0, -x.shape[-1] % 4, 0, -x.shape[-2] % 4))
        x = F.conv2d(x, p['patch_embed.proj.weight'],
                     p['patch_embed.proj.bias'], 4)
        hw = x.shape[-2:]
        xs.append(
            F.layer_norm(
                x.flatten(2).transpose(1, 2), x.shape[1:2],
                *norms['patch_embed.norm'][m], 1e-6))
    outs = [[], []]
    for i, depth in enumerate(TINY['depths']):
        c = xs[0].shape[-1]
        for j in range(depth):
            pre = f'layers.{i}.blocks.{j}.'
            shortcut = xs
            attn = [
                ms_window_attention(
                    F.layer_norm(x, (c, ), p[pre + 'norm1.weight'],
                                 p[pre + 'norm1.bias']), p, pre, heads[i],
                    window, window // 2 if j % 2 else 0, hw) for x in xs
            ]
            if fuse:
                attn = reference_fusion(attn, p, pre, c)
            xs = [s + a for s, a in zip(shortcut, attn)]
            xs = [
                x + F.linear(
                    F.gelu(
                        F.linear(
                            F.layer_norm(x, (c, ), p[pre + 'norm2.weight'],
                                         p[pre + 'norm2.bias']),
                            p[pre + 'mlp.fc1.weight'],
                            p[pre + 'mlp.fc1.bias'])),
                    p[pre + 'mlp.fc2.weight'], p[pre + 'mlp.fc2.bias'])
                for x in xs
            ]
        for m in (0, 1):
            out = F.layer_norm(xs[m], (c, ), *norms[f'norm{i}'][m], 1e-6)
            outs[m].append(out.transpose(1, 2).reshape(-1, c, *hw))
        if i < 3:
            pre = f'layers.{i}.downsample.'
            merged = []
            for x in xs:
                x = x.view(-1, *hw, c)
                x = F.pad(x, (0, 0, 0, hw[1] % 2, 0, hw[0] % 2))
                x = torch.cat([
                    x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2],
                    x[:, 1::2, 1::2]
                ], -1)
                x = F.layer_norm(
                    x.flatten(1, 2), (4 * c, ), p[pre + 'norm.weight'],
                    p[pre + 'norm.bias'])
                merged.append(F.linear(x, p[pre + 'reduction.weight']))
            xs = merged
            hw = ((hw[0] + 1) // 2, (hw[1] + 1) // 2)
    return outs


def make_plain_swin(seed=0, window=TINY['window'], fusion=True):
    """Random single-stream Swin weights in Microsoft names (plus the
    GeminiFusion tensors of every block if ``fusion``), shapes of TINY."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=0.2, offset=0.):
        return torch.randn(*shape, generator=g) * scale + offset

    c = TINY['embed_dims']
    p = OrderedDict()
    p['patch_embed.proj.weight'] = rnd(c, 3, 4, 4)
    p['patch_embed.proj.bias'] = rnd(c)
    p['patch_embed.norm.weight'] = rnd(c, offset=1.)
    p['patch_embed.norm.bias'] = rnd(c)
    for i, depth in enumerate(TINY['depths']):
        heads = TINY['num_heads'][i]
        for j in range(depth):
            pre = f'layers.{i}.blocks.{j}.'
            for norm in ('norm1', 'norm2'):
                p[pre + norm + '.weight'] = rnd(c, offset=1.)
                p[pre + norm + '.bias'] = rnd(c)
            p[pre + 'attn.relative_position_bias_table'] = rnd(
                (2 * window - 1)**2, heads, scale=1.)
            p[pre + 'attn.relative_position_index'] = \
                microsoft_relative_index(window)
            p[pre + 'attn.qkv.weight'] = rnd(3 * c, c)
            p[pre + 'attn.qkv.bias'] = rnd(3 * c)
            p[pre + 'attn.proj.weight'] = rnd(c, c)
            p[pre + 'attn.proj.bias'] = rnd(c)
            p[pre + 'mlp.fc1.weight'] = rnd(4 * c, c)
            p[pre + 'mlp.fc1.bias'] = rnd(4 * c)
            p[pre + 'mlp.fc2.weight'] = rnd(c, 4 * c)
            p[pre + 'mlp.fc2.bias'] = rnd(c)
            if fusion:
                for name in ('cross_attn_0_to_1', 'cross_attn_1_to_0'):
                    p[f'{pre}{name}.in_proj_weight'] = rnd(3 * c, c)
                    p[f'{pre}{name}.in_proj_bias'] = rnd(3 * c)
                    p[f'{pre}{name}.out_proj.weight'] = rnd(c, c)
                    p[f'{pre}{name}.out_proj.bias'] = rnd(c)
                p[pre + 'relation_judger.0.fc1.weight'] = rnd(c, 2 * c)
                p[pre + 'relation_judger.0.fc1.bias'] = rnd(c)
                p[pre + 'relation_judger.0.fc2.weight'] = rnd(c, c)
                p[pre + 'relation_judger.0.fc2.bias'] = rnd(c)
                p[pre + 'k_noise.weight'] = rnd(2, c, scale=1.)
                p[pre + 'v_noise.weight'] = rnd(2, c, scale=1.)
        if i < 3:
            pre = f'layers.{i}.downsample.'
            p[pre + 'reduction.weight'] = rnd(2 * c, 4 * c)
            p[pre + 'norm.weight'] = rnd(4 * c, offset=1.)
            p[pre + 'norm.bias'] = rnd(4 * c)
            c *= 2
    return p


def stream_norms(seed, identity=False):
    """Per-stream patch-embed / output norms: distinct random or 1 / 0."""
    g = torch.Generator().manual_seed(seed)
    norms = {}
    for name, c in [('patch_embed.norm', 16), ('norm0', 16), ('norm1', 32),
                    ('norm2', 64), ('norm3', 128)]:
        norms[name] = [(torch.ones(c), torch.zeros(c)) if identity else
                       (1 + 0.2 * torch.randn(c, generator=g),
                        0.2 * torch.randn(c, generator=g)) for _ in (0, 1)]
    return norms


def as_double(tree):
    """float64 copy of a dict of tensors / lists of (weight, bias)."""
    if isinstance(tree, torch.Tensor):
        return tree.double() if tree.is_floating_point() else tree
    if isinstance(tree, dict):
        return type(tree)((k, as_double(v)) for k, v in tree.items())
    return type(tree)(as_double(v) for v in tree)


def split(feats):
    return [[f[:f.shape[0] // 2] for f in feats],
            [f[f.shape[0] // 2:] for f in feats]]


# --------------------------------------------------------------------------
# structure and placement
# --------------------------------------------------------------------------
def test_swin_t_params_match_the_reference():
    """The reference's figures: GeminiFusion Swin-T encoder (2 streams,
    no head) 51.3 M parameters of which 23.8 M in the 12 fusion modules
    (11C² + 14C each)."""
    model = FusedSwin(arch='swin-t', fusion=GEMINI)
    params = sum(p.numel() for p in model.parameters())
    fusion = sum(p.numel() for k, p in model.named_parameters()
                 if k.startswith('fusion_layers.0.sites.'))
    # the fusion layer's parameters are only the modules of its sites
    assert fusion == sum(p.numel() for p in model.fusion_layers.parameters())
    assert model.fusion_layers.blocks == [
        (i, j) for i, depth in enumerate((2, 2, 6, 2)) for j in range(depth)
    ]
    assert len(model.fusion_layers.blocks) == 12
    assert abs(params - 51.3e6) < 0.1e6 and params == 51_307_578
    assert abs(fusion - 23.8e6) < 0.1e6
    dims = [96] * 2 + [192] * 2 + [384] * 6 + [768] * 2
    assert fusion == sum(11 * c * c + 14 * c for c in dims)


def test_bad_input_and_arguments():
    model = tiny_swin()
    with pytest.raises(ValueError, match='6 input channels, got 3'):
        model(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match='arch must be one of'):
        FusedSwin(arch='swin-xl')
    # Swin hosts only the fusion point after the window attention: token
    # exchange (block input / output) and GeminiFusion at MiT's point
    # (before the projection) are refused at build
    with pytest.raises(ValueError, match='does not host') as error:
        tiny_swin(fusion=dict(type='TokenExchange'))
    assert 'begin_block' in str(error.value)
    assert 'FusedSwin' in str(error.value)
    with pytest.raises(ValueError, match='fuse_attention_heads'):
        tiny_swin(fusion=dict(type='GeminiFusion', heads=8))
    with pytest.raises(NotImplementedError):
        tiny_swin(num_modalities=3)


@pytest.mark.parametrize('fusion', [GEMINI, None], ids=['gemini', 'none'])
def test_without_fusion_each_modality_runs_mmseg_swin(fusion):
    """Zeroed fusion out-projections (fusion = identity) or no fusion: each
    modality's features equal mmseg's SwinTransformer with the shared
    weights and that modality's patch-embed / output norms."""
    torch.manual_seed(0)
    model = tiny_swin(fusion=fusion, modality_norm_eps=1e-5).eval()
    model.init_weights()
    zeroed = 0
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.startswith('fusion_layers.') and \
                    'cross_attn' in name and 'out_proj' in name:
                param.zero_()
                zeroed += 1
            elif name.startswith(('patch_embed.norm', 'norm')):
                param.normal_(0.5, 0.3)
    assert zeroed == (0 if fusion is None else 8 * 2 * 2)
    x = torch.randn(2, 6, 56, 72)
    with torch.no_grad():
        ours = split(model(x))
    for m in (0, 1):
        plain = SwinTransformer(
            embed_dims=16,
            depths=TINY['depths'],
            num_heads=TINY['num_heads'],
            window_size=TINY['window'],
            drop_path_rate=0.)
        plain.eval()  # mmseg's Swin.train returns None
        state = {
            k:
            v[m] if v.dim() == 2 and k.startswith(
                ('patch_embed.norm', 'norm')) else v
            for k, v in model.state_dict().items()
            if not k.startswith('fusion_layers.')
        }
        plain.load_state_dict(state, strict=True)
        with torch.no_grad():
            expected = plain(x[:, 3 * m:3 * m + 3])
        for a, b in zip(ours[m], expected):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_fusion_sits_after_window_attention_before_drop_path():
    """In a shifted block with padding: the fusion input is the window-
    attention output after reverse / un-shift / crop, and the block output
    is FFN-residual(x + fusion(...)) (no projection after the fusion)."""
    torch.manual_seed(0)
    model = tiny_swin().eval()
    block = model.stages[0].blocks[1]
    assert block.attn.shift_size == 2
    fusion = fusion_module(model, 0, 1)
    # the fusion point takes the place of the DropPath, which it keeps
    assert isinstance(block.attn.drop, FuseThenDropPath)
    assert type(block.attn.drop.drop_path).__name__ == 'DropPath'
    assert block.attn.drop.site.layers == (model.fusion_layers[0], )
    seen = {}
    hooks = [
        block.attn.register_forward_pre_hook(
            lambda mod, args: seen.setdefault('attn_in', args)),
        fusion.register_forward_pre_hook(
            lambda mod, args: seen.setdefault('fusion_in', args[0])),
        block.register_forward_hook(
            lambda mod, args, out: seen.update(block=(args[0], out))),
    ]
    with torch.no_grad():
        model(torch.randn(2, 6, 56, 72))  # stage 1: 14 x 18, padded to 16x20
        for h in hooks:
            h.remove()
        query, hw = seen['attn_in']
        assert tuple(hw) == (14, 18)
        plain_attn = copy.deepcopy(block.attn)
        plain_attn.drop = nn.Identity()
        torch.testing.assert_close(seen['fusion_in'], plain_attn(query, hw))
        x_in, x_out = seen['block']
        mid = x_in + fusion(seen['fusion_in'])
        torch.testing.assert_close(x_out,
                                   block.ffn(block.norm2(mid), identity=mid))


def test_relative_position_index_is_microsofts():
    model = tiny_swin()
    index = model.stages[0].blocks[0].attn.w_msa.relative_position_index
    assert torch.equal(index, microsoft_relative_index(TINY['window']))


def test_merging_order_matches_unfold():
    c = 3
    x = torch.randn(2, 4, 6, c)  # B, H, W, C
    concat = torch.cat([
        x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]
    ], -1)
    unfold = F.unfold(x.permute(0, 3, 1, 2), 2, stride=2).transpose(1, 2)
    torch.testing.assert_close(
        merging_to_unfold_order(concat.flatten(1, 2)), unfold)


# --------------------------------------------------------------------------
# ImageNet initialisation
# --------------------------------------------------------------------------
def test_microsoft_imagenet_checkpoint_init(tmp_path):
    """An official-format file ({'model': ...} with head, final norm and
    attn_mask buffers) initialises every shared layer; per-modality norms
    keep 1 / 0 and fusion modules their init, as the reference."""
    plain = make_plain_swin(fusion=False)
    state = OrderedDict(plain)
    state['layers.0.blocks.1.attn_mask'] = torch.zeros(16, 16, 16)
    state['norm.weight'] = torch.ones(128)
    state['norm.bias'] = torch.zeros(128)
    state['head.weight'] = torch.zeros(10, 128)
    state['head.bias'] = torch.zeros(10)
    path = str(tmp_path / 'swin_tiny_ms.pth')
    torch.save({'model': state}, path)
    model = tiny_swin(
        fusion=None, init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    assert torch.equal(model.patch_embed.norm.weight, torch.ones(2, 16))
    x = torch.randn(2, 6, 56, 72, dtype=torch.float64)
    with torch.no_grad():
        ours = split(model.eval().double()(x))
        expected = reference_forward(
            as_double(plain), as_double(stream_norms(0, identity=True)),
            [x[:, :3], x[:, 3:]], False)
    for m in (0, 1):
        for a, b in zip(ours[m], expected[m]):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)

    fused = tiny_swin(init_cfg=dict(type='Pretrained', checkpoint=path))
    fused.init_weights()
    assert fusion_module(fused, 2, 0).k_noise.weight.std() > .5

    state['layers.0.blocks.0.attn.bogus'] = torch.zeros(1)
    torch.save({'model': state}, path)
    with pytest.raises(KeyError, match='attn.bogus'):
        tiny_swin(
            init_cfg=dict(type='Pretrained', checkpoint=path)).init_weights()


def test_mmseg_checkpoint_with_other_window_is_resized_like_mmseg(tmp_path):
    """An mmseg-format file of window 4 into a window-6 model: relative
    position tables equal those mmseg's own SwinTransformer loads."""
    state = swin_to_mmseg(make_plain_swin(fusion=False))
    # mmseg's loader would copy these window-4 buffers (size mismatch);
    # ours ignores them
    state = {
        k: v
        for k, v in state.items() if not k.endswith('relative_position_index')
    }
    path = str(tmp_path / 'swin_mmseg.pth')
    torch.save({'state_dict': {
        f'backbone.{k}': v
        for k, v in state.items()
    }}, path)
    model = tiny_swin(
        window_size=6, init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    plain = SwinTransformer(
        embed_dims=16,
        depths=TINY['depths'],
        num_heads=TINY['num_heads'],
        window_size=6,
        init_cfg=dict(type='Pretrained', checkpoint=path))
    plain.init_weights()
    key = 'stages.2.blocks.1.attn.w_msa.relative_position_bias_table'
    assert model.state_dict()[key].shape == (11 * 11, 4)
    torch.testing.assert_close(model.state_dict()[key],
                               plain.state_dict()[key])
    torch.testing.assert_close(
        model.state_dict()['stages.1.downsample.reduction.weight'],
        plain.state_dict()['stages.1.downsample.reduction.weight'])
    table = torch.full((49, 3), 0.7)
    torch.testing.assert_close(
        resize_relative_position_table(table, 121), torch.full((121, 3), 0.7))


# --------------------------------------------------------------------------
# official GeminiFusion Swin checkpoints
# --------------------------------------------------------------------------
def reference_layout(plain, norms, head_state):
    """The reference WeTr file: ModuleParallel '.module.' segments,
    LayerNormParallel ln_{m}, fusion tensors directly in each block,
    'module.' DataParallel prefix, {'segmenter': ...}."""
    wrapped = {
        'attn.qkv.': 'attn.module.qkv.',
        'attn.proj.': 'attn.module.proj.',
        'attn.relative_position': 'attn.module.relative_position',
        'norm1.': 'norm1.module.',
        'norm2.': 'norm2.module.',
        'mlp.fc1.': 'mlp.fc1.module.',
        'mlp.fc2.': 'mlp.fc2.module.',
        'downsample.': 'downsample.module.',
        'patch_embed.proj.': 'patch_embed.proj.module.',
    }
    state = OrderedDict()
    for key, value in plain.items():
        if key.startswith('patch_embed.norm'):
            continue
        for theirs, ours in wrapped.items():
            if theirs in key:
                key = key.replace(theirs, ours)
                break
        state[f'module.encoder.body.{key}'] = value
    for name, per_stream in norms.items():
        for m, (weight, bias) in enumerate(per_stream):
            state[f'module.encoder.body.{name}.ln_{m}.weight'] = weight
            state[f'module.encoder.body.{name}.ln_{m}.bias'] = bias
    for key, value in head_state.items():
        if key.startswith('decode_head.'):
            state['module.decoder.' + key[len('decode_head.'):]] = value
    state['module.alpha'] = torch.tensor([0.3, 1.2])
    return {'segmenter': state, 'epoch_start': 300, 'best_val': 52.2}


def test_reference_checkpoint_converts_and_matches_reference_forward():
    cfg = Config.fromfile(TINY_CONFIG)
    torch.manual_seed(0)
    segmentor = MODELS.build(cfg.model)
    plain = make_plain_swin(seed=1)
    norms = stream_norms(2)
    checkpoint = reference_layout(plain, norms, segmentor.state_dict())
    converted = convert_geminifusion_swin_reference(checkpoint)
    # the fusion tensors of block j of stage i sit in the fusion layer
    assert FUSION_PATH.format(stage=1, block=0) == 'fusion_layers.0.sites.1.0'
    fusion = [
        k for k in converted
        if 'cross_attn' in k or '_noise' in k or 'relation_judger' in k
    ]
    assert set(fusion) == {
        f'backbone.fusion_layers.0.sites.{i}.{j}.{name}'
        for i in range(4)
        for j in range(2)
        for name in GEMINI_PARAMS
    }
    assert torch.equal(
        converted['backbone.fusion_layers.0.sites.3.1.k_noise.weight'],
        plain['layers.3.blocks.1.k_noise.weight'])
    segmentor.load_state_dict(converted, strict=True)
    assert torch.equal(segmentor.alpha, torch.tensor([0.3, 1.2]))
    assert torch.equal(
        segmentor.backbone.norm2.weight,
        torch.stack([norms['norm2'][0][0], norms['norm2'][1][0]]))
    # float64: eight fusion sites on random weights amplify float32
    # rounding to ~1e-3 in the 2x3-token last stage (either implementation)
    segmentor.eval().double()
    x = torch.randn(2, 6, 56, 72, dtype=torch.float64)
    with torch.no_grad():
        ours = split(segmentor.backbone(x))
        expected = reference_forward(
            as_double(plain), as_double(norms), [x[:, :3], x[:, 3:]], True)
    for m in (0, 1):
        for a, b in zip(ours[m], expected[m]):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_converter_tool_takes_swin_files(tmp_path):
    cfg = Config.fromfile(TINY_CONFIG)
    segmentor = MODELS.build(cfg.model)
    checkpoint = reference_layout(
        make_plain_swin(seed=3), stream_norms(1), segmentor.state_dict())
    src, dst = str(tmp_path / 'swin.pth.tar'), str(tmp_path / 'ours.pth')
    torch.save(checkpoint, src)
    meta = geminifusion2mmseg.main([src, dst])
    saved = torch.load(dst, map_location='cpu', weights_only=True)
    expected = convert_geminifusion_swin_reference(checkpoint)
    assert list(saved['state_dict']) == list(expected)
    for key, value in expected.items():
        assert torch.equal(saved['state_dict'][key], value), key
    segmentor.load_state_dict(saved['state_dict'], strict=True)
    backbone = cfg.model.backbone
    assert meta['fusion'] == 'geminifusion' and meta['backbone'] == 'swin'
    assert meta['embed_dims'] == [backbone.embed_dims * 2**s for s in range(4)]
    assert meta['depths'] == list(backbone.depths)
    assert meta['window_size'] == backbone.window_size
    assert meta['fusion_sites'] == sum(backbone.depths)
    assert meta['num_modalities'] == meta['num_streams'] == 2
    assert meta['epoch_start'] == 300 and meta['best_val'] == 52.2


def test_reference_converter_is_strict():
    cfg = Config.fromfile(TINY_CONFIG)
    segmentor = MODELS.build(cfg.model)
    checkpoint = reference_layout(make_plain_swin(), stream_norms(0),
                                  segmentor.state_dict())
    state = checkpoint['segmenter']
    state['module.encoder.body.layers.0.blocks.0.gate.weight'] = \
        torch.zeros(1)
    state['module.extra.weight'] = torch.zeros(1)
    with pytest.raises(KeyError) as err:
        convert_geminifusion_swin_reference(checkpoint)
    assert 'layers.0.blocks.0.gate.weight' in str(err.value)
    assert 'extra.weight' in str(err.value)
    del state['module.encoder.body.layers.0.blocks.0.gate.weight']
    del state['module.extra.weight']
    state['module.encoder.body.norm1.ln_3.weight'] = torch.ones(32)
    with pytest.raises(ValueError, match='ln_'):
        convert_geminifusion_swin_reference(checkpoint)
    # a third modality in one place only
    del state['module.encoder.body.norm1.ln_3.weight']
    state['module.encoder.body.norm1.ln_2.weight'] = torch.ones(32)
    with pytest.raises(ValueError, match=r'norm1\.weight'):
        convert_geminifusion_swin_reference(checkpoint)
    # a third modality everywhere: GeminiFusion fuses two
    for key in [k for k in state if k.endswith('.ln_1.weight')]:
        state[key.replace('.ln_1.', '.ln_2.')] = state[key]
        bias = key.replace('.ln_1.weight', '.ln_1.bias')
        state[bias.replace('.ln_1.', '.ln_2.')] = state[bias]
    with pytest.raises(ValueError, match='fuses 2 modalities'):
        convert_geminifusion_swin_reference(checkpoint)
    # alpha: one weight per stream
    checkpoint = reference_layout(make_plain_swin(), stream_norms(0),
                                  segmentor.state_dict())
    checkpoint['segmenter']['module.alpha'] = torch.ones(3)
    with pytest.raises(ValueError, match=r'alpha has shape \(3,\)'):
        convert_geminifusion_swin_reference(checkpoint)


# --------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------
def test_tiny_config_trains_with_the_train_tool(tmp_path):
    data_root = str(tmp_path / 'synthetic')
    output = tool(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools/train.py'), TINY_CONFIG, '--work-dir',
            str(tmp_path / 'work'), '--cfg-options'
        ] + tiny_options(data_root, 2),
        cwd=tmp_path)
    assert 'decode.ensemble.loss_ce' in output
    assert osp.exists(str(tmp_path / 'work' / 'iter_2.pth'))
