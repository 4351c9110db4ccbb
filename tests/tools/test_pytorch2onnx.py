"""tools/deployment/pytorch2onnx.py: the exported graphs compute in
onnxruntime what the segmentors compute in PyTorch (data preprocessor +
encode_decode), at the export shape and, for dynamic exports, at others;
the TokenFusion exchange stays data-dependent in the graph; bad inputs are
clear errors; the benchmark's ``--backend ort`` mode."""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from projects.common.checkpoint import CheckpointMismatchError
from projects.multimodal_seg.models import TokenExchange
from tools.analysis_tools.benchmark import main as benchmark_main
from tools.deployment import pytorch2onnx
from tools.deployment.pytorch2onnx import (DeployableSegmentor,
                                           UnsupportedModelError,
                                           build_segmentor, example_inputs,
                                           export, load_checkpoint_strict,
                                           onnxruntime_session)
from ..utils import REPO_ROOT, seg_samples

TOKENFUSION = 'configs/tokenfusion/' \
    'tokenfusion_mit-tiny_1xb8-1k_synthetic-rgbd-64x64.py'
TOKENFUSION_RGBDEL = 'configs/tokenfusion/' \
    'tokenfusion_mit-tiny_1xb8-3k_synthetic-rgbdel-64x64.py'
GEMINIFUSION = 'configs/geminifusion/' \
    'geminifusion_mit-tiny_1xb8-1k_synthetic-rgbd-64x64.py'
GEMINIFUSION_RGBDEL = 'configs/geminifusion/' \
    'geminifusion_mit-tiny_1xb8-3k_synthetic-rgbdel-64x64.py'
GEMINIFUSION_MERGE = 'configs/geminifusion/' \
    'geminifusion-merge_mit-tiny_1xb8-200-ft_synthetic-rgbd-64x64.py'
GEMINIFUSION_SWIN = 'configs/geminifusion/' \
    'geminifusion_swin-tiny_1xb8-1k_synthetic-rgbd-64x64.py'
SEGFORMER = 'configs/segformer/' \
    'segformer_mit-tiny-concat_1xb8-1k_synthetic-rgbd-64x64.py'
# TokenFusion with θ = 0.5 and sharpened score predictors: many tokens on
# both sides of θ, so that the comparisons exercise the exchange (at the
# reference θ = 0.02 an untrained predictor exchanges nothing)
THRESHOLD = 0.5
TOLERANCE = 1e-4

pytestmark = pytest.mark.usefixtures('one_thread')


def tiny_model(config, **options):
    """The config's untrained model; TokenFusion with :data:`THRESHOLD`
    and score predictors sharpened x4 (a spread of scores around θ)."""
    torch.manual_seed(0)
    tokenfusion = 'tokenfusion' in config
    if tokenfusion:
        options['model.backbone.fusion.threshold'] = THRESHOLD
    model, _ = build_segmentor(osp.join(REPO_ROOT, config), options)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if 'norm' in name:  # distinct per-stream norms
                param.add_(0.3 * torch.randn_like(param))
            if tokenfusion and '.score_predictors.' in name and '.fc' in name:
                param.mul_(4)
    return model.eval()


def reference_outputs(model, raw):
    """What the segmentor computes in PyTorch for raw packed samples: its
    own data preprocessor, then ``encode_decode``, split as the graph's
    outputs (``logits`` (B, K, H, W), ``stream_logits`` (S, B, K, H, W)),
    and the exchange masks (score < θ) of every TokenFusion block (none
    for other fusion layers)."""
    pre = model.data_preprocessor
    b, _, h, w = raw.shape
    samples = seg_samples(b, size=h, modalities=pre.modalities)
    for sample in samples:  # the shape of a non-square input
        sample.set_metainfo(
            dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
    with torch.no_grad():
        data = pre(dict(inputs=list(raw), data_samples=samples), False)
        out = model.encode_decode(data['inputs'], None)
    k, s = model.decode_head.out_channels, model.num_streams
    streams = out[:, k:].reshape(b, s, k, h, w).transpose(0, 1)
    layer = model.backbone.fusion_layers[0]
    masks = [score < layer.threshold for score in layer.scores] \
        if isinstance(layer, TokenExchange) else []
    return out[:, :k], streams, masks


def assert_matches(path, model, raw):
    """onnxruntime on ``raw`` equals the PyTorch reference within
    :data:`TOLERANCE`; returns the reference's exchange masks."""
    logits, streams, masks = reference_outputs(model, raw)
    got = onnxruntime_session(
        path, threads=1).run(None, {'inputs': raw.numpy()})
    assert got[0].shape == tuple(logits.shape)
    assert got[1].shape == tuple(streams.shape)
    np.testing.assert_allclose(got[0], logits.numpy(), rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(got[1], streams.numpy(), rtol=0, atol=TOLERANCE)
    return masks


def assert_exchange_exercised(masks):
    """Every TokenFusion block exchanges some tokens and keeps others, and
    neither is rare overall."""
    assert masks
    fractions = [float(mask.float().mean()) for mask in masks]
    assert all(0 < f < 1 for f in fractions), fractions
    overall = float(
        torch.cat([mask.flatten() for mask in masks]).float().mean())
    assert 0.1 < overall < 0.9, fractions


def save_checkpoint(model, path, classes=None):
    meta = dict(dataset_meta=dict(classes=classes)) if classes else {}
    torch.save(dict(state_dict=model.state_dict(), meta=meta), path)
    return str(path)


def metadata_of(path):
    return {
        p.key: json.loads(p.value)
        for p in onnx.load(str(path)).metadata_props
    }


def test_cli_exports_a_checkpoint(tmp_path):
    """The command line end to end: a TokenFusion checkpoint with class
    names -> ONNX with the documented input / outputs and metadata, equal
    to PyTorch in onnxruntime (also the segmentor's ``predict``)."""
    model = tiny_model(TOKENFUSION)
    classes = ['floor', 'wall', 'table', 'chair', 'lamp']
    checkpoint = save_checkpoint(model, tmp_path / 'tf.pth', classes)
    out = tmp_path / 'tf.onnx'
    proc = subprocess.run([
        sys.executable,
        osp.join(REPO_ROOT, 'tools/deployment/pytorch2onnx.py'),
        osp.join(REPO_ROOT,
                 TOKENFUSION), checkpoint, '--shape', '64', '48', '--out',
        str(out), '--verify', '--cfg-options',
        f'model.backbone.fusion.threshold={THRESHOLD}'
    ],
                          cwd=tmp_path,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert 'verify: batch 1, 64x48' in proc.stdout
    graph = onnx.load(str(out)).graph
    assert [i.name for i in graph.input] == ['inputs']
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim
            ] == [1, 4, 64, 48]
    assert [o.name for o in graph.output] == ['logits', 'stream_logits']
    meta = metadata_of(out)
    assert meta['opset'] == 17 and meta['dynamic'] is False
    assert meta['modalities'] == ['rgb', 'depth']
    assert meta['in_channels'] == [3, 1]
    assert meta['stream_names'] == ['rgb', 'depth']
    assert meta['classes'] == classes and meta['num_classes'] == 5
    assert meta['fusion'] == ['TokenExchange']
    assert meta['normalization'][1]['std'] == [5000.0]
    assert meta['checkpoint'] == 'tf.pth'
    raw = example_inputs(DeployableSegmentor(model), (64, 48), seed=3)
    assert_exchange_exercised(assert_matches(out, model, raw))
    # the prediction path tools/test.py takes gives the same logits
    pre = model.data_preprocessor
    samples = seg_samples(1, size=64)
    for sample in samples:
        sample.set_metainfo(
            dict(img_shape=(64, 48), ori_shape=(64, 48), pad_shape=(64, 48)))
    with torch.no_grad():
        data = pre(dict(inputs=list(raw), data_samples=samples), False)
        predicted = model.predict(data['inputs'], data['data_samples'])
    logits = onnxruntime_session(str(out)).run(['logits'],
                                               {'inputs': raw.numpy()})[0]
    np.testing.assert_allclose(
        logits[0], predicted[0].seg_logits.data.numpy(), atol=TOLERANCE)


@pytest.mark.parametrize(
    'config', [TOKENFUSION, GEMINIFUSION, GEMINIFUSION_SWIN],
    ids=['tokenfusion', 'geminifusion', 'geminifusion-swin'])
def test_static_export_matches_pytorch(config, tmp_path):
    model = tiny_model(config)
    deployable = DeployableSegmentor(model)
    path = str(tmp_path / 'model.onnx')
    export(deployable, path, (64, 80))
    masks = assert_matches(path, model,
                           example_inputs(deployable, (64, 80), seed=1))
    if config == TOKENFUSION:
        assert_exchange_exercised(masks)


@pytest.mark.parametrize(
    'config, options', [(TOKENFUSION, {}),
                        (TOKENFUSION_RGBDEL, {
                            'model.backbone.fusion.allocation_pattern': 5
                        }), (GEMINIFUSION, {}), (GEMINIFUSION_RGBDEL, {})],
    ids=[
        'tokenfusion', 'tokenfusion-m4-allocation', 'geminifusion',
        'geminifusion-hub'
    ])
def test_dynamic_export_matches_pytorch_at_other_sizes(config, options,
                                                       tmp_path):
    """Traced at batch 1, 64x64; run at other batches and sizes (token
    grids that are no multiple of the 5 x 5 allocation pattern of the
    four-modality TokenFusion, whose tiling must stay symbolic)."""
    model = tiny_model(config, **options)
    deployable = DeployableSegmentor(model)
    path = str(tmp_path / 'model.onnx')
    export(deployable, path, (64, 64), dynamic=True)
    assert metadata_of(path)['dynamic'] is True
    for seed, (batch, h, w) in enumerate([(1, 64, 64), (2, 96, 72),
                                          (3, 40, 104)]):
        masks = assert_matches(path, model,
                               example_inputs(deployable, (h, w), batch, seed))
        if 'tokenfusion' in config:
            assert_exchange_exercised(masks)


def frozen_exchange(attn_out, scores, threshold, allocation=None):
    """TokenFusion's ``fuse_attention_output`` with the mask computed in
    Python (``tolist``), as an exchange written with Python control flow
    would be traced: a constant of the graph."""
    from projects.fusion_math.token_exchange import source_tokens
    weighted = attn_out * scores.unsqueeze(-1)
    mask = torch.tensor((scores < threshold).tolist())
    return torch.where(
        mask.unsqueeze(-1), source_tokens(weighted, allocation), weighted)


def test_exchange_mask_is_data_dependent_in_the_graph(tmp_path, monkeypatch):
    """Two inputs whose exchange masks differ in PyTorch: the graph traced
    on the first computes both exactly, with one Less + Where per fused
    block. A graph whose mask is a constant of the trace matches the first
    input only, so the comparison at the second input catches it."""
    model = tiny_model(TOKENFUSION)
    deployable = DeployableSegmentor(model)
    path = str(tmp_path / 'exchange.onnx')
    export(deployable, path, (64, 64))
    nodes = [n.op_type for n in onnx.load(path).graph.node]
    fused_blocks = len(model.backbone.fusion_layers[0].block_names)
    assert nodes.count('Less') == nodes.count('Where') == fused_blocks == 4
    traced = example_inputs(deployable, (64, 64))  # the export's input
    other = traced.clone()
    other[:, :3] = 255 - other[:, :3]  # RGB negative, same depth
    masks_traced = assert_matches(path, model, traced)
    masks_other = assert_matches(path, model, other)
    assert_exchange_exercised(masks_traced + masks_other)
    # the masks differ (most tokens are in the first stage)
    changed = [
        float((a != b).float().mean())
        for a, b in zip(masks_traced, masks_other)
    ]
    assert changed[0] > 0.05, changed

    # the same check fails for an export whose mask was frozen at trace time
    from projects.multimodal_seg.models.fusion_layers import token_exchange
    monkeypatch.setattr(token_exchange, 'fuse_attention_output',
                        frozen_exchange)
    frozen = str(tmp_path / 'frozen.onnx')
    export(deployable, frozen, (64, 64))
    monkeypatch.undo()
    assert 'Less' not in [n.op_type for n in onnx.load(frozen).graph.node]
    assert_matches(frozen, model, traced)
    with pytest.raises(AssertionError):
        assert_matches(frozen, model, other)


def test_checkpoint_must_fit_the_config(tmp_path):
    """A checkpoint of another model is an error naming the checkpoint and
    the keys, not a partial load."""
    checkpoint = save_checkpoint(
        tiny_model(TOKENFUSION), tmp_path / 'tokenfusion.pth')
    gemini, _ = build_segmentor(osp.join(REPO_ROOT, GEMINIFUSION))
    with pytest.raises(CheckpointMismatchError) as error:
        load_checkpoint_strict(gemini, checkpoint, GEMINIFUSION)
    message = str(error.value)
    assert checkpoint in message and GEMINIFUSION in message
    assert 'missing from the checkpoint' in message
    assert 'backbone.fusion_layers.0.sites.0.0.' in message
    assert 'not in the model' in message
    assert 'backbone.fusion_layers.0.score_predictors.0.' in message
    # another number of classes: the shapes are named
    with pytest.raises(SystemExit) as exit_:
        pytorch2onnx.main([
            osp.join(REPO_ROOT,
                     TOKENFUSION), checkpoint, '--shape', '64', '64', '--out',
            str(tmp_path / 'x.onnx'), '--cfg-options',
            'model.decode_head.num_classes=7'
        ])
    message = str(exit_.value.code)
    assert message.startswith('pytorch2onnx: error: checkpoint ')
    assert 'decode_head.linear_pred.weight: checkpoint (5, 64, 1, 1), ' \
        'model (7, 64, 1, 1)' in message
    assert not (tmp_path / 'x.onnx').exists()


def test_unsupported_inputs_are_errors(tmp_path):
    with pytest.raises(UnsupportedModelError, match='builds EncoderDecoder'):
        build_segmentor(osp.join(REPO_ROOT, SEGFORMER))
    swin = DeployableSegmentor(tiny_model(GEMINIFUSION_SWIN))
    with pytest.raises(UnsupportedModelError, match='ShiftWindowMSA'):
        export(swin, str(tmp_path / 'swin.onnx'), (64, 64), dynamic=True)
    assert not (tmp_path / 'swin.onnx').exists()
    with pytest.raises(pytorch2onnx.ExportError, match='opsets 14 to 20'):
        export(swin, str(tmp_path / 'swin.onnx'), (64, 64), opset=13)
    merging = DeployableSegmentor(tiny_model(GEMINIFUSION_MERGE))
    with pytest.raises(UnsupportedModelError, match='token_merge'):
        export(merging, str(tmp_path / 'merge.onnx'), (64, 64))
    with pytest.raises(SystemExit) as exit_:  # no checkpoint
        pytorch2onnx.parse_args(
            [osp.join(REPO_ROOT, TOKENFUSION), '--shape', '64', '64'])
    assert exit_.value.code == 2
    with pytest.raises(SystemExit) as exit_:
        pytorch2onnx.main([
            osp.join(REPO_ROOT, SEGFORMER), '--random-weights', '--shape',
            '64', '64'
        ])
    assert 'MultiStreamEncoderDecoder' in str(exit_.value.code)
    with pytest.raises(SystemExit) as exit_:  # a file that is no checkpoint
        torch.save([1, 2], tmp_path / 'list.pth')
        pytorch2onnx.main([
            osp.join(REPO_ROOT, TOKENFUSION),
            str(tmp_path / 'list.pth'), '--shape', '64', '64'
        ])
    assert 'list.pth: expected a dict checkpoint' in str(exit_.value.code)


def test_benchmark_backend_ort(tmp_path):
    """``benchmark.py --backend ort``: the exported graph in onnxruntime vs
    the same module in PyTorch eager, one table row per model."""
    out = tmp_path / 'ort.md'
    json_out = tmp_path / 'ort.json'
    benchmark_main([
        '--backend', 'ort', '--arch', 'b0', '--models', 'tokenfusion-m2',
        'geminifusion', '--sizes', '64x96', '--warmup', '0', '--iters', '2',
        '--threads', '1', '--in-process', '--out',
        str(out), '--json-out',
        str(json_out)
    ])
    table = out.read_text()
    assert 'ONNX Runtime' in table and 'onnxruntime ' in table
    rows = [line for line in table.splitlines() if line.startswith('| ')]
    assert [r.split(' | ')[0] for r in rows[1:]] == \
        ['| tokenfusion-m2', '| geminifusion']
    results = json.loads(json_out.read_text())['backend']
    for r in results:
        assert r['size'] == [64, 96]
        assert len(r['times'][0]['cpu']) == len(r['times'][1]['cpu']) == 2
        assert r['ratio'] > 0
        assert max(r['max_abs_diff'].values()) < TOLERANCE
