"""One measurement in one process: what a fresh subprocess runs.

A measurement is described by a JSON-able ``spec`` dict (built by
``benchmark.py``): ``model``, ``arch``, ``size`` (H, W), ``mode``
('infer' / 'train'), ``batch``, ``throughput_batch`` (0: none),
``warmup``, ``iters``, ``threads``, ``timer`` ('wall' / 'cpu'), ``device``,
``head_channels``, ``num_classes``, ``backbone_only``, ``profile``,
optionally ``measure='memory'`` (one step's memory only) or
``measure='scaling'``, for a paired timing ``baseline`` (model B), for
a backend comparison ``backend`` (:mod:`.backends`).

Run as ``python -m tools.analysis_tools.benchmarking.worker SPEC_JSON``
from the repository root, it prints the result as one line
``RESULT_TAG + json`` (:mod:`.isolation` reads it back).
"""
import json
import statistics
import sys
import warnings
from typing import Callable

import torch
import torch.nn as nn

from tools.analysis_tools.benchmarking.backends import run_backend_worker
from tools.analysis_tools.benchmarking.macs import (count_macs_split,
                                                    count_params)
from tools.analysis_tools.benchmarking.memory import PeakMemory
from tools.analysis_tools.benchmarking.models import (build_model,
                                                      parse_model_name)
from tools.analysis_tools.benchmarking.steps import make_inputs, make_step
from tools.analysis_tools.benchmarking.timing import (profile_fn,
                                                      time_alternately,
                                                      time_fn)

RESULT_TAG = 'BENCHMARK_RESULT '


def build_for_spec(spec: dict) -> nn.Module:
    """The model (or backbone) of ``spec`` on its device."""
    return build_model(spec['model'], spec['arch'], spec['head_channels'],
                       spec['num_classes'],
                       spec['backbone_only']).to(spec['device'])


def step_for_spec(model: nn.Module, spec: dict,
                  batch: int) -> Callable[[], None]:
    """One ``spec['mode']`` step of ``model`` on fresh synthetic inputs
    of batch ``batch``."""
    _, _, channels = parse_model_name(spec['model'])
    inputs, samples = make_inputs(batch, channels, spec['size'],
                                  spec['num_classes'], spec['device'])
    return make_step(model, inputs, samples, spec['mode'],
                     spec['backbone_only'])


def _setup(spec: dict) -> None:
    warnings.filterwarnings('ignore')
    torch.set_num_threads(spec['threads'])
    torch.manual_seed(0)


def run_worker(spec: dict) -> dict:
    """One (model, size, mode) measurement: params, timing (median of the
    ``spec['timer']`` clock) and peak memory growth of the timed steps; for
    inference also MACs and throughput, unless ``measure='memory'``."""
    _setup(spec)
    device = spec['device']
    model = build_for_spec(spec)
    result = dict(
        spec,
        params=count_params(model),
        fusion_params=count_params(model, fusion_only=True))
    memory = PeakMemory(device)
    step = step_for_spec(model, spec, spec['batch'])
    memory.start()
    times = time_fn(step, spec['warmup'], spec['iters'], device)
    result.update(
        times=times,
        median=statistics.median(times[spec['timer']]),
        peak_memory=memory.peak(),
        memory_method=memory.method)
    if spec.get('measure') == 'memory':
        return result
    if spec['mode'] == 'infer':
        model.eval()
        _, _, channels = parse_model_name(spec['model'])
        h, w = spec['size']
        x = torch.randn(1, channels, h, w, device=device)
        result['macs'], result['fusion_macs'] = count_macs_split(model, x)
        if spec['throughput_batch']:
            step_batch = step_for_spec(model, spec, spec['throughput_batch'])
            times = time_fn(step_batch, spec['warmup'], spec['iters'], device)
            result['throughput_times'] = times
            result['throughput'] = spec['throughput_batch'] / \
                statistics.median(times[spec['timer']])
    if spec['profile']:
        result['profile'] = profile_fn(
            step_for_spec(model, spec, spec['batch']), device)
    return result


def run_paired_worker(spec: dict) -> dict:
    """Time two models alternately in one process (A B A B ...), so that
    both see the same interference from other processes on the machine.
    ``spec['model']`` is A, ``spec['baseline']`` B; returns the medians and
    the median of the per-round ratios A / B."""
    _setup(spec)
    steps = []
    for name in (spec['model'], spec['baseline']):
        one = dict(spec, model=name)
        steps.append(step_for_spec(build_for_spec(one), one, spec['batch']))
    times = time_alternately(steps, spec['warmup'], spec['iters'],
                             spec['device'])
    timer = spec['timer']
    ratios = [a / b for a, b in zip(times[0][timer], times[1][timer])]
    return dict(
        spec,
        times=times,
        medians=[statistics.median(t[timer]) for t in times],
        ratio=statistics.median(ratios))


def run_spec(spec: dict) -> dict:
    """A backend comparison if ``spec`` names a ``backend``, a paired
    timing if it names a ``baseline``, else one measurement."""
    if 'backend' in spec:
        _setup(spec)
        return run_backend_worker(spec)
    return run_paired_worker(spec) if 'baseline' in spec else run_worker(spec)


if __name__ == '__main__':
    result = run_spec(json.loads(sys.argv[1]))
    print(RESULT_TAG + json.dumps(result), flush=True)
