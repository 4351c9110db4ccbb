"""Running measurements in fresh subprocesses (or in this process).

Every (model, size, mode) runs in a fresh ``python -m
tools.analysis_tools.benchmarking.worker`` process, so that models do not
share allocator state, caches or a peak-memory high-water mark; on CPU its
peak memory comes from a second fresh process (:func:`measure`).
"""
import json
import os
import os.path as osp
import subprocess
import sys
from typing import List, Optional

from tools.analysis_tools.benchmarking.worker import (RESULT_TAG,
                                                      run_paired_worker,
                                                      run_worker)

REPO_ROOT = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
WORKER_MODULE = 'tools.analysis_tools.benchmarking.worker'

# glibc malloc that keeps freed memory for reuse (like PyTorch's CUDA caching
# allocator) instead of returning every block above 32 MiB to the kernel and
# faulting it in again on the next step
CACHING_MALLOC_ENV = dict(
    MALLOC_MMAP_THRESHOLD_=str(2**32),
    MALLOC_TRIM_THRESHOLD_=str(2**36),
    MALLOC_TOP_PAD_=str(2**30))
# glibc malloc that serves every block >= 64 KiB by mmap, so that a freed
# tensor leaves the resident set at once and the RSS follows live tensors
MEMORY_MALLOC_ENV = dict(MALLOC_MMAP_THRESHOLD_='65536')
# the target pairs (A, B, mode) that ``--paired`` times alternately
PAIRS = (('tokenfusion-m2', 'rgb', 'infer'), ('reference-m2', 'tokenfusion-m2',
                                              'train'))


def run_in_subprocess(spec: dict, env: Optional[dict] = None) -> dict:
    """The worker's result for ``spec``, run in a fresh process with
    ``env`` added to this one's environment."""
    cmd = [sys.executable, '-m', WORKER_MODULE, json.dumps(spec)]
    proc = subprocess.run(
        cmd,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, **(env or {})))
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    raise RuntimeError(f'worker failed for {spec}:\n{proc.stderr[-4000:]}')


def timing_env(spec: dict) -> Optional[dict]:
    """The malloc environment of a timing process (``caching_malloc``)."""
    return CACHING_MALLOC_ENV if spec.get('caching_malloc') else None


def measure(spec: dict, in_process: bool) -> dict:
    """Timing (and MACs, throughput) and peak memory of one (model, size,
    mode).

    On CPU the memory is measured in its own fresh process run with
    :data:`MEMORY_MALLOC_ENV`: with the default allocator freed pages are
    kept and reused and the RSS peak depends on fragmentation (that number,
    from the timing process, is kept as ``peak_memory_timing_process``).
    One step is measured there, the first, which for training also creates
    the AdamW state. ``in_process``: everything here, CPU memory then
    includes whatever earlier measurements left behind.
    """
    if in_process:
        return run_worker(spec)
    result = run_in_subprocess(spec, timing_env(spec))
    if not spec['device'].startswith('cuda'):
        memory = run_in_subprocess(
            dict(
                spec,
                measure='memory',
                warmup=0,
                iters=1,
                throughput_batch=0,
                profile=False),
            env=MEMORY_MALLOC_ENV)
        result['peak_memory_timing_process'] = result['peak_memory']
        result['peak_memory'] = memory['peak_memory']
        result['memory_method'] = memory['memory_method'] + \
            ' (MALLOC_MMAP_THRESHOLD_=65536)'
    return result


def run_paired(args, base_spec: dict) -> List[dict]:
    """The :data:`PAIRS` ratios at the first ``--sizes`` entry, each timed
    A B A B ... for ``args.paired`` rounds in one process."""
    results = []
    for model, baseline, mode in PAIRS:
        spec = dict(
            base_spec,
            model=model,
            baseline=baseline,
            mode=mode,
            size=args.sizes[0],
            iters=args.paired,
            batch=1 if mode == 'infer' else args.train_batch_size)
        if args.in_process:
            results.append(run_paired_worker(spec))
        else:
            results.append(run_in_subprocess(spec, timing_env(spec)))
        r = results[-1]
        print(
            f'paired {model} / {baseline} {mode}: {r["ratio"]:.2f}',
            flush=True)
    return results
