"""GeminiFusion (ICML'24) as ``TokenFusionMiT(fusion='geminifusion')``."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmseg.registry import MODELS

from projects.tokenfusion.models import GeminiFusion, TokenFusionMiT
from tools.analysis_tools.benchmark import count_macs
from .conftest import REPO_ROOT
from .test_tokenfusion_model import samples

DEMO_CONFIG = (f'{REPO_ROOT}/configs/geminifusion/'
               'geminifusion_mit-tiny_1xb8-1k_synthetic-rgbd-64x64.py')


def randomised(channels=16, heads=8, seed=0):
    """A GeminiFusion whose every parameter (incl. the zero-initialised
    biases) is random, so that the comparisons see all of them."""
    torch.manual_seed(seed)
    module = GeminiFusion(channels, heads)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return module


def naive_gemini(module, x, per_pixel):
    """The reference computation written out with ``nn.MultiheadAttention``
    (sequence-first): a Python loop over the batch (as the reference code)
    and, with ``per_pixel``, over the pixels too. Query length 1, keys /
    values length 2: [s + n_k[m], s * r] / [s + n_v[m], t]; z = s + MHA."""
    c = module.channels
    fc1 = nn.Linear(2 * c, c)
    fc2 = nn.Linear(c, c)
    fc1.load_state_dict(module.relation_judger[0].fc1.state_dict())
    fc2.load_state_dict(module.relation_judger[0].fc2.state_dict())
    mhas = []
    for name in ('cross_attn_0_to_1', 'cross_attn_1_to_0'):
        mha = nn.MultiheadAttention(c, module.num_heads)
        mha.load_state_dict(getattr(module, name).state_dict())
        mhas.append(mha.eval())
    k_noise = module.k_noise.weight
    v_noise = module.v_noise.weight
    y = x.reshape(2, -1, *x.shape[1:])  # (2, B, N, C)
    out = torch.empty_like(y)
    for m in range(2):
        for b in range(y.shape[1]):
            s_all, t_all = y[m, b], y[1 - m, b]  # (N, C)
            pixels = [slice(p, p + 1) for p in range(s_all.shape[0])] \
                if per_pixel else [slice(None)]
            for p in pixels:
                s, t = s_all[p], t_all[p]  # (n, C), n pixels as MHA batch
                r = torch.softmax(
                    fc2(F.gelu(fc1(torch.cat([s, t], -1)))), dim=-1)
                query = s[None]  # (1, n, C)
                key = torch.stack([s + k_noise[m], s * r])  # (2, n, C)
                value = torch.stack([s + v_noise[m], t])
                f, _ = mhas[m](query, key, value, need_weights=False)
                out[m, b, p] = s + f[0]
    return out.reshape(x.shape)


@pytest.mark.parametrize('per_pixel', [False, True])
def test_vectorised_module_equals_reference_loop(per_pixel):
    module = randomised()
    x = torch.randn(2 * 3, 10, 16)  # M=2, B=3, N=10, C=16
    with torch.no_grad():
        expected = naive_gemini(module, x, per_pixel)
        out = module(x)
    # both directions: rows 0..2 (0 <- 1) and 3..5 (1 <- 0)
    torch.testing.assert_close(out[:3], expected[:3], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[3:], expected[3:], atol=1e-5, rtol=0)


def test_noise_is_learned_and_deterministic():
    module = randomised()
    x = torch.randn(4, 7, 16)
    module.train()
    first, second = module(x), module(x)
    module.eval()
    torch.testing.assert_close(first, second, atol=0, rtol=0)
    torch.testing.assert_close(module(x), first, atol=0, rtol=0)
    assert module.k_noise.weight.shape == (2, 16)
    assert module.v_noise.weight.shape == (2, 16)


def test_relation_softmax_over_channels_and_init():
    module = GeminiFusion(32)
    s, t = torch.randn(2, 5, 32), torch.randn(2, 5, 32)
    r = module.relation(s, t)
    assert r.shape == s.shape and (r > 0).all()
    torch.testing.assert_close(r.sum(-1), torch.ones(2, 5))
    # A4.5: trunc_normal(0.02) Linear layers with zero bias, xavier in_proj
    # with zero bias, N(0, 1) noise
    fc1 = module.relation_judger[0].fc1
    assert fc1.weight.std() < 0.03 and not fc1.bias.any()
    assert not module.cross_attn_0_to_1.in_proj_bias.any()
    assert not module.cross_attn_1_to_0.out_proj.bias.any()
    assert module.cross_attn_0_to_1.out_proj.weight.std() < 0.03
    assert module.k_noise.weight.std() > 0.5
    names = {k for k, _ in module.named_parameters()}
    assert {
        'cross_attn_0_to_1.in_proj_weight', 'cross_attn_1_to_0.in_proj_bias',
        'cross_attn_0_to_1.out_proj.weight', 'relation_judger.0.fc1.weight',
        'relation_judger.0.fc2.bias', 'k_noise.weight', 'v_noise.weight'
    } <= names


def test_gradients_reach_every_fusion_parameter():
    module = randomised()
    x = torch.randn(4, 6, 16, requires_grad=True)
    (module(x)**2).sum().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


def test_more_than_two_modalities_go_through_the_hub():
    # the module fuses two streams; the error points to the backbone's hub
    with pytest.raises(NotImplementedError, match='hub'):
        GeminiFusion(16, num_modalities=3)
    # the backbone reduces 3 modalities to RGB + one auxiliary stream
    backbone = TokenFusionMiT(
        num_modalities=3,
        embed_dims=8,
        num_layers=(1, 1, 1, 1),
        fusion='geminifusion')
    assert backbone.num_streams == 2 and len(backbone.extra_score_predictor)
    assert all(block.attn.gemini.num_modalities == 2 for s in range(1, 5)
               for block in getattr(backbone, f'block{s}'))
    feats, _ = backbone(torch.randn(1, 9, 32, 32))
    assert [f.shape[0] for f in feats] == [2] * 4


def tiny_backbone(**kwargs):
    kwargs = dict(
        embed_dims=8,
        num_layers=(2, 1, 1, 1),
        fusion='geminifusion',
        drop_path_rate=0.0,  # no row of the stack dropped: all grads flow
        **kwargs)
    torch.manual_seed(0)
    backbone = TokenFusionMiT(**kwargs)
    backbone.init_weights()
    return backbone


def test_fused_backbone_forward_backward_without_scores():
    backbone = tiny_backbone()
    assert backbone.gemini_blocks == [
        'block1.0', 'block1.1', 'block2.0', 'block3.0', 'block4.0'
    ]
    assert backbone.fused_blocks == [] and len(backbone.score_predictor) == 0
    x = torch.randn(2, 6, 64, 64)
    feats, scores = backbone(x)
    assert scores == []
    assert [f.shape for f in feats] == [(4, 8, 16, 16), (4, 16, 8, 8),
                                        (4, 40, 4, 4), (4, 64, 2, 2)]
    # (not a function of the stage norms' output scale only)
    sum((f * torch.randn_like(f)).sum() for f in feats).backward()
    gemini = {k: p for k, p in backbone.named_parameters() if '.gemini.' in k}
    assert len(gemini) == 5 * 14  # 2 x 4 MHA, 4 relation MLP, 2 noise
    for name, p in gemini.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_fusion_sites_follow_fuse_stages_and_blocks():
    backbone = tiny_backbone(fuse_stages=(0, 2), fuse_blocks='last')
    assert backbone.gemini_blocks == ['block1.1', 'block3.0']
    has = [
        name for name, module in backbone.named_modules()
        if name.endswith('.attn') and module.gemini is not None
    ]
    assert has == ['block1.1.attn', 'block3.0.attn']
    # no fused block: a plain shared dual-stream MiT
    assert tiny_backbone(fuse_stages=()).gemini_blocks == []


def test_fusion_sits_between_attention_and_projection():
    backbone = tiny_backbone().eval()
    attn = backbone.block1[0].attn
    seen = {}
    attn.gemini.register_forward_hook(
        lambda mod, args, out: seen.update(gemini_out=out))
    attn.proj.register_forward_hook(
        lambda mod, args, out: seen.update(proj_in=args[0]))
    backbone(torch.randn(1, 6, 32, 32))
    torch.testing.assert_close(seen['proj_in'], seen['gemini_out'])


def test_segmentor_trains_one_step():
    cfg = Config.fromfile(DEMO_CONFIG)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
    inputs = torch.randn(2, 6, 64, 64)
    losses = model.loss(inputs, samples(2))
    assert 'loss_sparsity' not in losses
    assert {
        'decode.rgb.loss_ce', 'decode.depth.loss_ce', 'decode.ensemble.loss_ce'
    } <= set(losses)
    assert model.fusion_stats == {}
    total = sum(v for k, v in losses.items() if 'loss' in k)
    optim.zero_grad()
    total.backward()
    before = model.backbone.block3[0].attn.gemini.k_noise.weight.clone()
    optim.step()
    assert not torch.equal(before,
                           model.backbone.block3[0].attn.gemini.k_noise.weight)
    model.eval()
    with torch.no_grad():
        logits = model.encode_decode(inputs, None)
    assert logits.shape == (2, 5 * 3, 64, 64)


def test_mit_b3_params_and_macs_match_the_reference():
    """MiT-B3 GeminiFusion encoder, 2 streams, no head (A4.6).

    Params: every parameter of the backbone counted once, i.e. shared
    layers once, per-modality LayerNorms twice, plus 28 GeminiFusion modules
    (no score predictors in this mode): 74,015,168 = 74.0 M, of which
    29,894,016 = 29.9 M in the fusion modules (reference: 74.0 M / 29.9 M).

    MACs at 480x640 (batch 1, both streams): ``count_macs`` (FLOPs of the
    dispatched matmul / conv / SDPA kernels / 2) gives 142.740 G; on meta
    tensors (used here for speed) the count is the same as on real CPU
    tensors (checked: 142,739,865,600 both). The reference figure, 142.8 G,
    runs ``nn.MultiheadAttention`` whose query-key product and
    attention-value product (query length 1, 2 keys) are batched matmuls:
    2C + 2C MACs per pixel and direction. Our closed form computes these two
    dot products elementwise (``(q * k).sum``, ``a1 * v1 + a2 * v2``),
    which a matmul-based counter does not see. Adding them analytically,
    sum over the 28 sites of 2 directions x 4C x pixels = 0.108 G, gives
    142.848 G = 142.8 G. Everything else (in-projection 5C², out-projection
    C², relation MLP 3C² per pixel and direction) is counted the same.
    """
    torch.manual_seed(0)
    model = TokenFusionMiT(arch='b3', fusion='geminifusion').eval()
    params = sum(p.numel() for p in model.parameters())
    fusion = sum(p.numel() for k, p in model.named_parameters()
                 if '.gemini.' in k)
    assert len(model.gemini_blocks) == 3 + 4 + 18 + 3
    assert params == 74_015_168 and round(params / 1e6, 1) == 74.0
    assert fusion == 29_894_016 and round(fusion / 1e6, 1) == 29.9

    model = model.to('meta')
    macs = count_macs(model, torch.empty(1, 6, 480, 640, device='meta'))
    assert macs == 142_739_865_600
    assert abs(macs / 142.8e9 - 1) < 0.005
    # the attention dot products the closed form does not count as matmuls
    pixels = [120 * 160, 60 * 80, 30 * 40, 15 * 20]
    dims, depths = [64, 128, 320, 512], [3, 4, 18, 3]
    dots = sum(2 * 4 * c * n * d for c, n, d in zip(dims, pixels, depths))
    assert round((macs + dots) / 1e9, 1) == 142.8


def test_imagenet_init_leaves_fusion_modules_random(tmp_path):
    from .test_tokenfusion_checkpoints import TINY_MIT, make_nvlabs_mit
    nvlabs = make_nvlabs_mit()
    path = str(tmp_path / 'mit_tiny.pth')
    torch.save(nvlabs, path)
    torch.manual_seed(0)
    model = TokenFusionMiT(
        fusion='geminifusion',
        init_cfg=dict(type='Pretrained', checkpoint=path),
        **TINY_MIT)
    model.init_weights()  # the GeminiFusion keys are not in the file
    assert torch.equal(model.block3[0].attn.q.weight,
                       nvlabs['block3.0.attn.q.weight'])
    assert model.block3[0].attn.gemini.k_noise.weight.std() > 0.5


def test_token_modes_build_no_fusion_module():
    for fusion in ('attention', 'token'):
        backbone = TokenFusionMiT(
            embed_dims=8, num_layers=(1, 1, 1, 1), fusion=fusion)
        assert backbone.gemini_blocks == []
        assert not any('gemini' in k for k in backbone.state_dict())
