"""GeminiFusion (ICML'24) as a fusion layer of the fused MiT:
``FusedMiT(fusion=dict(type='GeminiFusion'))``. The module's mathematics
is tested in ``tests/fusion_math/test_geminifusion.py``."""
import pytest
import torch
from mmengine.config import Config
from mmseg.registry import MODELS

from projects.multimodal_seg.models.backbones.fused_mit import FusedMiT
from projects.multimodal_seg.models.fusion_layers import GeminiFusion
from tools.analysis_tools.benchmarking.macs import count_macs
from ..tools.reference_fixtures import TINY_MIT, make_nvlabs_mit
from ..utils import REPO_ROOT, seg_samples

DEMO_CONFIG = (f'{REPO_ROOT}/configs/geminifusion/'
               'geminifusion_mit-tiny_1xb8-1k_synthetic-rgbd-64x64.py')
SITES = 'fusion_layers.0.sites.'


def gemini(**kwargs):
    """A GeminiFusion layer config."""
    return dict(type='GeminiFusion', **kwargs)


def test_more_than_two_modalities_go_through_the_hub():
    # the fusion module fuses two streams: without a hub, 3 modalities are
    # 3 streams and the error points to the hub
    with pytest.raises(NotImplementedError, match='hub'):
        FusedMiT(
            num_modalities=3,
            embed_dims=8,
            num_layers=(1, 1, 1, 1),
            fusion=gemini())
    # the hub reduces 3 modalities to RGB + one auxiliary stream
    backbone = FusedMiT(
        num_modalities=3,
        embed_dims=8,
        num_layers=(1, 1, 1, 1),
        fusion=gemini(),
        hub=dict(type='AuxiliaryHub'))
    assert backbone.num_streams == 2 and len(backbone.hub.score_predictors)
    layer = backbone.fusion_layers[0]
    assert layer.num_streams == 2
    assert all(site.num_modalities == 2 for stage in layer.sites.values()
               for site in stage.values())
    feats = backbone(torch.randn(1, 9, 32, 32))
    assert [f.shape[0] for f in feats] == [2] * 4


def tiny_backbone(**fusion):
    torch.manual_seed(0)
    backbone = FusedMiT(
        embed_dims=8,
        num_layers=(2, 1, 1, 1),
        fusion=gemini(**fusion),
        drop_path_rate=0.0)  # no row of the stack dropped: all grads flow
    backbone.init_weights()
    return backbone


def test_fused_backbone_forward_backward_without_scores():
    backbone = tiny_backbone()
    layer, = backbone.fusion_layers
    assert isinstance(layer, GeminiFusion)
    assert layer.heads == 8 and layer.point == 'fuse_attention_heads'
    assert backbone.fusion_layers.blocks == [(0, 0), (0, 1), (1, 0), (2, 0),
                                             (3, 0)]
    assert layer.placement == {0: (0, 1), 1: (0, ), 2: (0, ), 3: (0, )}
    # no token scoring: no score predictor anywhere
    assert not any('score_predictor' in k for k in backbone.state_dict())
    x = torch.randn(2, 6, 64, 64)
    feats = backbone(x)
    assert isinstance(feats, list)
    assert backbone.fusion_loss() == {}
    assert backbone.fusion_statistics(('rgb', 'depth')) == {}
    assert [f.shape for f in feats] == [(4, 8, 16, 16), (4, 16, 8, 8),
                                        (4, 40, 4, 4), (4, 64, 2, 2)]
    # (not a function of the stage norms' output scale only)
    sum((f * torch.randn_like(f)).sum() for f in feats).backward()
    fusion = {
        k: p
        for k, p in backbone.named_parameters() if k.startswith(SITES)
    }
    assert {k
            for k, _ in backbone.named_parameters()
            if 'fusion_layers' in k} == set(fusion)
    assert len(fusion) == 5 * 14  # 2 x 4 MHA, 4 relation MLP, 2 noise
    for name, p in fusion.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_fusion_sites_follow_stages_and_blocks():
    backbone = tiny_backbone(stages=(0, 2), blocks='last')
    layer = backbone.fusion_layers[0]
    assert backbone.fusion_layers.blocks == [(0, 1), (2, 0)]
    assert layer.placed_blocks == [(0, 1), (2, 0)]
    assert [(s, j) for s in range(4) for j in range(2)
            if layer.acts_in(s, j)] == [(0, 1), (2, 0)]
    sites = sorted({
        '.'.join(k.split('.')[3:5])
        for k in backbone.state_dict() if k.startswith(SITES)
    })
    assert sites == ['0.1', '2.0']
    # blocks of every stage chosen one by one
    backbone = tiny_backbone(blocks={0: [0], 3: [0]})
    assert backbone.fusion_layers.blocks == [(0, 0), (3, 0)]
    # no fused block: a plain shared dual-stream MiT
    backbone = tiny_backbone(stages=())
    assert backbone.fusion_layers.blocks == []
    assert not any(
        k.startswith('fusion_layers.') for k in backbone.state_dict())
    with pytest.raises(ValueError, match='out of range'):
        tiny_backbone(stages=(4, ))


def test_fusion_sits_between_attention_and_projection():
    backbone = tiny_backbone().eval()
    attn = backbone.block1[0].attn
    site = backbone.fusion_layers[0].sites['0']['0']
    seen = {}
    site.register_forward_hook(
        lambda mod, args, out: seen.update(gemini_out=out))
    attn.proj.register_forward_hook(
        lambda mod, args, out: seen.update(proj_in=args[0]))
    backbone(torch.randn(1, 6, 32, 32))
    torch.testing.assert_close(seen['proj_in'], seen['gemini_out'])


def test_fusion_after_the_projection_at_the_other_point():
    """``point='fuse_attention_output'`` (the reference's place in Swin):
    the module fuses the projected attention output."""
    backbone = tiny_backbone(point='fuse_attention_output').eval()
    attn = backbone.block1[0].attn
    site = backbone.fusion_layers[0].sites['0']['0']
    seen = {}
    site.register_forward_hook(
        lambda mod, args, out: seen.update(gemini_in=args[0]))
    attn.proj.register_forward_hook(
        lambda mod, args, out: seen.update(proj_in=args[0], proj_out=out))
    backbone(torch.randn(1, 6, 32, 32))
    torch.testing.assert_close(seen['gemini_in'], seen['proj_out'])
    assert not torch.allclose(seen['proj_in'], seen['proj_out'])
    with pytest.raises(ValueError, match='point must be one of'):
        tiny_backbone(point='end_block')


def test_segmentor_trains_one_step():
    cfg = Config.fromfile(DEMO_CONFIG)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
    inputs = torch.randn(2, 6, 64, 64)
    losses = model.loss(inputs, seg_samples(2))
    assert 'loss_sparsity' not in losses
    assert {
        'decode.rgb.loss_ce', 'decode.depth.loss_ce', 'decode.ensemble.loss_ce'
    } <= set(losses)
    assert model.fusion_stats == {}
    total = sum(v for k, v in losses.items() if 'loss' in k)
    optim.zero_grad()
    total.backward()
    site = model.backbone.fusion_layers[0].sites['2']['0']
    before = site.k_noise.weight.clone()
    optim.step()
    assert not torch.equal(before, site.k_noise.weight)
    model.eval()
    with torch.no_grad():
        logits = model.encode_decode(inputs, None)
    assert logits.shape == (2, 5 * 3, 64, 64)


def test_mit_b3_params_and_macs_match_the_reference():
    """MiT-B3 GeminiFusion encoder, 2 streams, no head (the reference's
    published figures).

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
    model = FusedMiT(arch='b3', fusion=gemini(heads=8)).eval()
    params = sum(p.numel() for p in model.parameters())
    fusion = sum(p.numel() for k, p in model.named_parameters()
                 if k.startswith('fusion_layers.'))
    assert len(model.fusion_layers.blocks) == 3 + 4 + 18 + 3
    assert fusion == sum(p.numel() for k, p in model.named_parameters()
                         if k.startswith(SITES))
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
    nvlabs = make_nvlabs_mit()
    path = str(tmp_path / 'mit_tiny.pth')
    torch.save(nvlabs, path)
    torch.manual_seed(0)
    model = FusedMiT(
        fusion=gemini(),
        init_cfg=dict(type='Pretrained', checkpoint=path),
        **TINY_MIT)
    site = model.fusion_layers[0].sites['2']['0']
    before = {k: v.clone() for k, v in site.state_dict().items()}
    model.init_weights()  # the GeminiFusion keys are not in the file
    assert torch.equal(model.block3[0].attn.q.weight,
                       nvlabs['block3.0.attn.q.weight'])
    assert site.k_noise.weight.std() > 0.5
    assert all(torch.equal(site.state_dict()[k], v) for k, v in before.items())


def test_token_modes_build_no_fusion_module():
    for fusion in (None, dict(type='TokenExchange', variant='attention'),
                   dict(type='TokenExchange', variant='token')):
        backbone = FusedMiT(
            embed_dims=8, num_layers=(1, 1, 1, 1), fusion=fusion)
        assert not any(
            isinstance(layer, GeminiFusion)
            for layer in backbone.fusion_layers)
        assert not any('sites' in k or 'cross_attn' in k
                       for k in backbone.state_dict())
