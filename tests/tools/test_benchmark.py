"""tools/analysis_tools/benchmark.py and its package benchmarking/: the
reference formulation (per-modality lists, Python loops around shared
layers, explicit softmax attention, one nn.LayerNorm per modality,
boolean-mask exchange) computes exactly what FusedMiT with a TokenExchange
layer computes with the same weights, the benchmarked segmentors run
MultiStreamEncoderDecoder's own ensemble and loss, the MAC counter counts
both formulations the same, and the CLI writes its tables."""
import json

import pytest
import torch
from mmseg.models.segmentors import EncoderDecoder

from projects.fusion_math.token_exchange import allocation_for_grid
from projects.multimodal_seg.models import (MIT_ARCHS, FusedMiT, GeminiFusion,
                                            MultiStreamEncoderDecoder,
                                            TokenExchange)
from tools.analysis_tools.benchmark import main
from tools.analysis_tools.benchmarking.macs import (check_flops, count_macs,
                                                    count_macs_split,
                                                    count_params,
                                                    is_fusion_name)
from tools.analysis_tools.benchmarking.models import (ReferenceBackbone,
                                                      build_model,
                                                      parse_model_name)
from tools.analysis_tools.benchmarking.scaling import fit_power_law, num_tokens
from tools.analysis_tools.benchmarking.steps import make_inputs, make_step
from tools.analysis_tools.reference_formulation import (
    ReferenceTokenFusionMiT, stack_outputs, token_exchange)

THRESHOLD = 0.5  # far above 0.02 so that many tokens are exchanged

pytestmark = pytest.mark.usefixtures('one_thread')


def tiny_pair(num_modalities):
    """A tiny FusedMiT with a TokenExchange layer, distinct per-modality
    norms and spread token scores, and its reference formulation."""
    torch.manual_seed(0)
    ours = FusedMiT(
        num_modalities=num_modalities,
        embed_dims=8,
        num_layers=(2, 1, 1, 1),
        fusion=dict(type='TokenExchange', threshold=THRESHOLD)).eval()
    with torch.no_grad():
        for name, param in ours.named_parameters():
            if 'norm' in name:
                param.add_(0.3 * torch.randn_like(param))
            if name.startswith('fusion_layers.0.score_predictors') \
                    and '.fc' in name:
                param.mul_(4)
    ref = ReferenceTokenFusionMiT.from_fused(ours).eval()
    x = torch.randn(2, 3 * num_modalities, 64, 64)
    return ours, ref, x


@pytest.mark.parametrize('num_modalities', [2, 3])
def test_reference_matches_fused(num_modalities):
    ours, ref, x = tiny_pair(num_modalities)
    num_params = [
        sum(p.numel() for p in net.parameters()) for net in (ours, ref)
    ]
    assert num_params[0] == num_params[1]
    assert len(ref.block1[0].norm1.ln_1.weight) == 8
    with torch.no_grad():
        feats = ours(x)
        scores = ours.fusion_layers[0].scores
        ref_feats, ref_scores = stack_outputs(*ref(x))
    assert len(ref_feats) == len(feats) == 4
    for a, b in zip(feats, ref_feats):
        assert a.shape == b.shape
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5)
    assert len(ref_scores) == len(scores) == 5
    for a, b in zip(scores, ref_scores):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5)
    # the comparison exercises the exchange: every modality keeps some
    # tokens and swaps others, and no score is within reach of rounding
    stacked = torch.cat([s.flatten(1) for s in scores], dim=1)
    exchanged = (stacked < THRESHOLD).float().mean(dim=1)
    assert ((exchanged > 0.1) & (exchanged < 0.98)).all(), exchanged
    assert (stacked - THRESHOLD).abs().min() > 1e-6


def test_reference_is_sensitive():
    """The equality above would fail on a wrong norm or exchange."""
    ours, ref, x = tiny_pair(2)
    with torch.no_grad():
        expected = ours(x)[0]
        ref.block1[0].norm1.ln_1.weight.mul_(1.1)
        assert not torch.allclose(stack_outputs(*ref(x))[0][0], expected)
        ref.block1[0].norm1.ln_1.weight.div_(1.1)
        torch.testing.assert_close(
            stack_outputs(*ref(x))[0][0], expected, rtol=0, atol=1e-5)
        ref.threshold = 0.02  # no exchange any more
        assert not torch.allclose(stack_outputs(*ref(x))[0][0], expected)


@pytest.mark.parametrize('num_modalities', [2, 3])
def test_reference_backbone_is_a_fused_backbone(num_modalities):
    """The adapter the benchmarked reference segmentor runs: FusedMiT's
    interface and outputs, the fusion loss and statistics of the fused
    model's own TokenExchange layer, and only the reference's parameters
    (the layer's copies of the score predictors are not its modules)."""
    ours, _, x = tiny_pair(num_modalities)
    adapter = ReferenceBackbone(ours).eval()
    assert adapter.num_modalities == adapter.num_streams == num_modalities
    assert count_params(adapter) == count_params(ours)
    assert count_params(adapter, fusion_only=True) == \
        count_params(ours, fusion_only=True) > 0
    assert not any(
        name.startswith('fusion_layers')
        for name, _ in adapter.named_parameters())
    names = [f'm{i}' for i in range(num_modalities)]
    with torch.no_grad():
        feats = ours(x)
        loss, stats = ours.fusion_loss(), ours.fusion_statistics(names)
        ref_feats = adapter(x)
        ref_loss = adapter.fusion_loss()
        ref_stats = adapter.fusion_statistics(names)
    for a, b in zip(feats, ref_feats):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5)
    assert set(loss) == set(ref_loss) == {'loss_sparsity'}
    torch.testing.assert_close(ref_loss['loss_sparsity'],
                               loss['loss_sparsity'])
    assert set(stats) == set(ref_stats) and 'stage1/m1/exchanged' in stats
    for key in stats:
        torch.testing.assert_close(ref_stats[key], stats[key])


def test_token_exchange_with_allocation():
    x = [torch.full((1, 4, 2), float(m)) for m in range(3)]
    scores = [torch.tensor([[1., 0., 0., 1.]])] * 3
    allocation = torch.tensor([[1, 2, 1, 2], [0, 0, 2, 2], [1, 0, 0, 1]])
    out = token_exchange(x, scores, 0.5, allocation)
    assert out[0][0, :, 0].tolist() == [0, 2, 1, 0]
    assert out[1][0, :, 0].tolist() == [1, 0, 2, 1]
    assert out[2][0, :, 0].tolist() == [2, 0, 0, 2]
    tiled = allocation_for_grid(allocation.view(3, 2, 2), 2, 2)
    assert tiled.equal(allocation)


@pytest.mark.parametrize('num_modalities', [2, 3])
def test_flops_equal(num_modalities):
    counts = check_flops(num_modalities)
    assert counts['ours'] == counts['reference'] > 0


def test_flop_counter_counts_attention_and_grouped_conv():
    """SDPA (CPU kernel), the explicit attention products and depthwise
    convs are all counted, and the segmentor adds its head."""
    q = torch.randn(2, 3, 16, 8)
    k = torch.randn(2, 3, 4, 8)

    class Sdpa(torch.nn.Module):

        def forward(self, q):
            return torch.nn.functional.scaled_dot_product_attention(q, k, k)

    class Explicit(torch.nn.Module):

        def forward(self, q):
            return (q @ k.transpose(-2, -1)).softmax(-1) @ k

    expected = 2 * 2 * 3 * 16 * 4 * 8
    assert count_macs(Sdpa(), q) == count_macs(Explicit(), q) == expected
    dwconv = torch.nn.Conv2d(6, 6, 3, padding=1, groups=6)
    assert count_macs(dwconv, torch.randn(1, 6, 5, 5)) == 6 * 25 * 9
    model = build_model('tokenfusion-m2', 'b0', head_channels=16)
    x = torch.randn(1, 6, 64, 64)
    assert count_macs(model, x) > count_macs(model.backbone, x)


def test_model_zoo():
    """Multimodal rows are MultiStreamEncoderDecoders (the reference one
    with the adapter backbone and exactly tokenfusion's parameters),
    single-modal rows mmseg's plain EncoderDecoder."""
    for name in ('rgb', 'rgb-mmseg', 'concat'):
        model = build_model(name, 'b0', head_channels=16)
        assert type(model) is EncoderDecoder
    assert type(build_model('rgb', 'b0').backbone) is FusedMiT
    assert type(build_model('rgb-mmseg', 'b0').backbone).__name__ == \
        'MixVisionTransformer'
    models = {
        name: build_model(name, 'b0', head_channels=16)
        for name in ('tokenfusion-m3', 'reference-m3', 'geminifusion')
    }
    for model in models.values():
        assert isinstance(model, MultiStreamEncoderDecoder)
    assert isinstance(models['reference-m3'].backbone, ReferenceBackbone)
    layers = list(models['tokenfusion-m3'].backbone.fusion_layers)
    assert len(layers) == 1 and isinstance(layers[0], TokenExchange)
    assert models['tokenfusion-m3'].num_streams == 3
    for fusion_only in (False, True):
        assert count_params(models['reference-m3'], fusion_only) == \
            count_params(models['tokenfusion-m3'], fusion_only)
    with pytest.raises(ValueError):
        parse_model_name('tokenfusion')


def test_reference_segmentor_loss_matches_tokenfusion():
    """The benchmarked reference-m2 and tokenfusion-m2 segmentors (built
    with the same seed, so the same weights) give the same
    MultiStreamEncoderDecoder losses: every stream's CE, the ensemble's CE
    and the sparsity term of the TokenExchange layer."""
    losses = {}
    inputs, samples = make_inputs(2, 6, (64, 64), 40, 'cpu')
    for name in ('tokenfusion-m2', 'reference-m2'):
        torch.manual_seed(0)
        # eval: no dropout / drop-path draws, which the two formulations
        # take in a different order
        model = build_model(name, 'b0', head_channels=16).eval()
        with torch.no_grad():
            losses[name] = model.loss(inputs, samples)
    ours, ref = losses['tokenfusion-m2'], losses['reference-m2']
    assert set(ours) == set(ref) >= {
        'decode.m0.loss_ce', 'decode.m1.loss_ce', 'decode.ensemble.loss_ce',
        'loss_sparsity'
    }
    for key in ours:
        torch.testing.assert_close(ref[key], ours[key])
    assert ours['loss_sparsity'] > 0


@pytest.mark.parametrize('name', ['tokenfusion-m2', 'reference-m2'])
def test_steps_use_the_segmentor(name):
    """The measured steps run MultiStreamEncoderDecoder's predict and loss:
    its ensemble in both, its fusion statistics after training; a train
    step updates the weights, the fusion layers' included."""
    torch.manual_seed(0)
    model = build_model(name, 'b0', head_channels=16)
    calls = []
    ensemble = model.ensemble

    def recording_ensemble(logits):
        calls.append(tuple(logits.shape))
        return ensemble(logits)

    model.ensemble = recording_ensemble
    inputs, samples = make_inputs(1, 6, (64, 64), 40, 'cpu')
    make_step(model, inputs, samples, 'infer')()
    assert calls == [(2, 1, 40, 16, 16)]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    make_step(model, inputs, samples, 'train')()
    assert len(calls) == 2
    assert 'stage1/m0/exchanged' in model.fusion_stats
    changed = {
        k
        for k, v in model.state_dict().items()
        if v.is_floating_point() and not v.equal(before[k])
    }
    assert any(is_fusion_name(k) for k in changed)
    assert any(k.startswith('decode_head.') for k in changed)
    with pytest.raises(ValueError):
        make_step(model, inputs, samples, 'eval')


def test_geminifusion_model_costs():
    """'geminifusion' is the dual-stream shared MiT plus, in every block,
    GeminiFusion's 18 C^2 MACs per pixel (per direction: relation MLP 3C^2,
    in-projection 5C^2, out-projection C^2) and 11 C^2 + 14 C parameters;
    it costs more than TokenFusion's score predictors."""
    assert parse_model_name('geminifusion') == ('geminifusion', 2, 6)
    model = build_model('geminifusion', 'b0', head_channels=16).eval()
    backbone = model.backbone
    layers = list(backbone.fusion_layers)
    assert len(layers) == 1 and isinstance(layers[0], GeminiFusion)
    depths = MIT_ARCHS['b0']['num_layers']
    assert len(layers[0].placed_blocks) == sum(depths)
    assert sum(len(site) for site in layers[0].sites.values()) == sum(depths)
    plain = FusedMiT(arch='b0').eval()
    tokenfusion = build_model('tokenfusion-m2', 'b0', backbone=True).eval()
    x = torch.randn(1, 6, 64, 64)
    dims = backbone.dims
    side = [64 // 4 // 2**s for s in range(4)]
    fusion_macs = sum(d * 18 * c * c * n * n
                      for d, c, n in zip(depths, dims, side))
    fusion_params = sum(d * (11 * c * c + 14 * c)
                        for d, c in zip(depths, dims))
    macs = count_macs(backbone, x)
    assert macs - count_macs(plain, x) == fusion_macs
    assert macs > count_macs(tokenfusion, x)
    assert count_params(backbone) - count_params(plain) == fusion_params
    _, samples = make_inputs(1, 6, (64, 64), 40, 'cpu')
    with torch.no_grad():
        out = model.predict(x, samples)[0]
    assert out.seg_logits.data.shape == (40, 64, 64)
    assert out.pred_sem_seg.data.shape == out.pred_sem_seg_m1.data.shape \
        == (1, 64, 64)
    assert count_macs(model, x) > macs  # + head


def test_fusion_split():
    """The fusion share of params / MACs is exactly what the fusion
    modules add over the plain dual-stream MiT (GeminiFusion), counted once
    however the score predictors are written (TokenFusion: ours and the
    reference formulation agree), and zero without fusion."""
    x = torch.randn(1, 6, 64, 64)
    plain = FusedMiT(arch='b0').eval()
    gemini = build_model('geminifusion', 'b0', backbone=True).eval()
    total, fusion = count_macs_split(gemini, x)
    assert total == count_macs(gemini, x)
    assert fusion == total - count_macs(plain, x) > 0
    assert count_params(gemini, fusion_only=True) == \
        count_params(gemini) - count_params(plain)
    ours, ref, x = tiny_pair(2)
    splits = [count_macs_split(net, x[:1]) for net in (ours, ref)]
    assert splits[0] == splits[1] and 0 < splits[0][1] < splits[0][0]
    fusion_params = [count_params(net, True) for net in (ours, ref)]
    assert fusion_params[0] == fusion_params[1] == sum(
        p.numel() for p in ours.fusion_layers.parameters())
    rgb = build_model('rgb', 'b0', head_channels=16).eval()
    assert count_macs_split(rgb, x[:1, :3])[1] == 0
    assert is_fusion_name('backbone.hub.score_predictors.0.score_nets.1')
    assert is_fusion_name(
        'backbone.fusion_layers.0.sites.0.1.cross_attn_0_to_1')
    assert is_fusion_name('backbone.reference.score_predictor.0.score_nets')
    assert not is_fusion_name('backbone.block1.0.attn.proj')
    assert not is_fusion_name('backbone.block1.0.attn.hub_proj')
    assert count_params(rgb, fusion_only=True) == 0


def test_comparison_table(tmp_path):
    """One run compares the models at one size with every ratio to rgb;
    target rows of models not measured are left out."""
    out, raw = tmp_path / 'bench.md', tmp_path / 'bench.json'
    models = ['rgb', 'concat', 'tokenfusion-m2', 'geminifusion']
    main([
        '--arch', 'b0', '--models', *models, '--sizes', '32x32', '--warmup',
        '0', '--iters', '1', '--batch-size', '0', '--train-batch-size', '1',
        '--threads', '1', '--head-channels', '16', '--in-process', '--out',
        str(out), '--json-out',
        str(raw)
    ])
    results = json.loads(raw.read_text())['32x32']
    assert list(results) == models
    for name, r in results.items():
        assert set(r) == {'infer', 'train'}
        assert r['infer']['params'] == r['train']['params']
        assert (r['infer']['fusion_params'] > 0) == (name in models[2:])
        assert (r['infer']['fusion_macs'] > 0) == (name in models[2:])
    table = [
        line.split(' | ') for line in out.read_text().splitlines()
        if line.startswith('| ')
    ]
    header, rows = table[0], {row[0][2:]: row for row in table[1:]}
    assert len(header) == 16 and header[2] == header[5] == 'x rgb'
    assert set(rows) == set(models) | {
        'ratio', 'tokenfusion-m2 / rgb inference latency (b1)'
    }
    assert all(len(rows[name]) == 16 for name in models)
    assert rows['rgb'][2] == rows['rgb'][5] == rows['rgb'][8] == '1.00'
    gemini = results['geminifusion']['infer']
    assert rows['geminifusion'][3] == f"{gemini['fusion_params'] / 1e6:.2f}"
    assert rows['geminifusion'][5] == \
        f"{gemini['macs'] / results['rgb']['infer']['macs']:.2f}"
    assert 'reference-m2' not in out.read_text()


def test_fit_power_law_exact():
    xs = [1200, 4800, 19200, 76800]
    k, c = fit_power_law(xs, [3 * x**1.7 for x in xs])
    assert k == pytest.approx(1.7, abs=1e-12)
    assert c == pytest.approx(3, rel=1e-9)
    k, _ = fit_power_law([2, 8], [5, 5])
    assert k == pytest.approx(0, abs=1e-12)
    with pytest.raises(ValueError):
        fit_power_law([4, 4], [1, 2])
    with pytest.raises(ValueError):
        fit_power_law([1], [1])
    assert num_tokens((240, 320)) == 60 * 80
    assert num_tokens((30, 30)) == 8 * 8


def test_scaling_cli(tmp_path, capsys):
    out, raw = tmp_path / 'scaling.md', tmp_path / 'scaling.json'
    main([
        '--scaling', '--arch', 'b0', '--models', 'rgb', 'geminifusion',
        '--scaling-sizes', '32x32', '64x64', '64x128', '--warmup', '0',
        '--iters', '1', '--threads', '1', '--head-channels', '16',
        '--in-process', '--out',
        str(out), '--json-out',
        str(raw)
    ])
    results = json.loads(raw.read_text())['scaling']
    assert list(results) == ['rgb', 'geminifusion']
    for r in results.values():
        assert [row['tokens'] for row in r['rows']] == [64, 256, 512]
        macs = [row['macs'] for row in r['rows']]
        assert macs == sorted(macs)
        assert 0.8 < r['k_macs'] < 2 and r['k_time'] is not None
        k, _ = fit_power_law([row['tokens'] for row in r['rows']], macs)
        assert k == pytest.approx(r['k_macs'])
    assert results['geminifusion']['rows'][1]['macs'] > \
        results['rgb']['rows'][1]['macs']
    report = out.read_text()
    assert 'k (time ∝ tokens^k)' in report and '| geminifusion |' in report
    assert 'Token scaling' in capsys.readouterr().out
