"""Deployment backends: the model's ONNX graph in onnxruntime against the
same computation in PyTorch eager (``benchmark.py --backend ort``).

For a ``--models`` entry (a multi-stream segmentor of the zoo,
:mod:`.models`) the measured computation is what
``tools/deployment/pytorch2onnx.py`` exports: the data preprocessor's
per-modality normalisation of raw packed inputs (modalities ``rgb``,
``depth``, ``hha``, ... in :data:`MODALITY_DEFAULTS` order, their default
normalisation), whole-image ``encode_decode`` and the split into ensemble
and stream logits, batch 1, eval mode. PyTorch runs the module
(:class:`DeployableSegmentor`) under ``torch.no_grad``; onnxruntime (CPU
execution provider, default graph optimisations) runs its export, traced at
the measured size (static shape). Both use ``threads`` intra-op threads
(``torch.set_num_threads``, ``intra_op_num_threads``; no inter-op
parallelism, onnxruntime's idle threads do not spin) and are timed in turns
in one process (:func:`time_alternately`), so that the ratio onnxruntime /
PyTorch (median of the per-round ratios) is measured in one run under the
same load. The largest difference of their outputs on the timed input is
recorded as a check.
"""
import os
import os.path as osp
import statistics
import tempfile
import time

import torch

from projects.multimodal_seg.models import (MODALITY_DEFAULTS,
                                            MultiModalSegDataPreProcessor)
from tools.analysis_tools.benchmarking.models import (build_model,
                                                      parse_model_name)
from tools.analysis_tools.benchmarking.timing import time_alternately
from tools.deployment.pytorch2onnx import (DeployableSegmentor, example_inputs,
                                           export, max_differences,
                                           onnxruntime_session)

BACKENDS = ('ort', )
# the zoo models a backend comparison can export
EXPORTABLE_KINDS = ('tokenfusion', 'geminifusion')


def check_backend_model(name: str) -> None:
    """Raise ValueError for a ``--models`` entry that has no deployment
    graph (single-stream baselines, the reference formulation)."""
    kind, m, _ = parse_model_name(name)
    if kind not in EXPORTABLE_KINDS or m < 2:
        raise ValueError(
            f'--backend: {name!r} is not exported by pytorch2onnx (it '
            'exports MultiStreamEncoderDecoder models with fused '
            f'backbones); choose from {EXPORTABLE_KINDS[0]}-mN, '
            f'{EXPORTABLE_KINDS[1]}')


def deployable_for_spec(spec: dict) -> DeployableSegmentor:
    """The zoo model of ``spec`` behind the deployment graph's interface,
    with the default normalisation of its M modalities."""
    check_backend_model(spec['model'])
    _, m, _ = parse_model_name(spec['model'])
    names = list(MODALITY_DEFAULTS)[:m]
    if len(names) < m:
        raise ValueError(f'{spec["model"]}: at most {len(names)} modalities '
                         f'have default normalisations ({names})')
    model = build_model(spec['model'], spec['arch'], spec['head_channels'],
                        spec['num_classes']).eval()
    pre = MultiModalSegDataPreProcessor(modalities=names)
    return DeployableSegmentor(model, pre).eval()


def run_backend_worker(spec: dict) -> dict:
    """Export the model of ``spec`` at ``spec['size']`` and time PyTorch
    eager (A) and onnxruntime (B) in turns: ``spec['warmup']`` untimed
    rounds, ``spec['iters']`` timed ones (threads and seed set by the
    caller). Returns ``times`` [PyTorch, onnxruntime], their ``medians``,
    ``ratio`` (median of the per-round onnxruntime / PyTorch ratios),
    ``max_abs_diff`` per output, ``export_seconds``, ``onnx_bytes`` and
    the versions."""
    if spec['backend'] not in BACKENDS:
        raise ValueError(f'backend must be one of {BACKENDS}, got '
                         f'{spec["backend"]!r}')
    if spec['device'] != 'cpu':
        raise ValueError('--backend ort runs onnxruntime\'s CPU execution '
                         'provider: use --device cpu')
    import onnxruntime
    deployable = deployable_for_spec(spec)
    inputs = example_inputs(deployable, spec['size'])
    feed = {'inputs': inputs.numpy()}
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, f'{spec["model"]}.onnx')
        start = time.perf_counter()
        export(deployable, path, spec['size'])
        export_seconds = time.perf_counter() - start
        onnx_bytes = os.path.getsize(path)
        session = onnxruntime_session(path, spec['threads'])
    diffs = max_differences(deployable, session, inputs)

    def eager():
        with torch.no_grad():
            deployable(inputs)

    def ort():
        session.run(None, feed)

    times = time_alternately([eager, ort], spec['warmup'], spec['iters'],
                             spec['device'])
    timer = spec['timer']
    ratios = [b / a for a, b in zip(times[0][timer], times[1][timer])]
    return dict(
        spec,
        times=times,
        medians=[statistics.median(t[timer]) for t in times],
        ratio=statistics.median(ratios),
        max_abs_diff=diffs,
        export_seconds=export_seconds,
        onnx_bytes=onnx_bytes,
        torch_version=torch.__version__,
        onnxruntime_version=onnxruntime.__version__)
