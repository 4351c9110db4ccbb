"""Timing and profiling of a step closure (torch only: also used by
``benchmark_3d.py``).

Every timed call records both clocks: wall-clock seconds
(``time.perf_counter``, with ``torch.cuda.synchronize`` around the call on
CUDA) and the process' CPU seconds (``time.process_time``), which with one
thread does not count the time other processes take the core away.
"""
import time
from typing import Callable, Dict, List, Sequence

import torch

TIMERS = ('wall', 'cpu')


def sync(device: str) -> None:
    """Wait for the device's queued kernels (no-op on CPU)."""
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def time_fn(fn: Callable[[], None], warmup: int, iters: int,
            device: str) -> Dict[str, List[float]]:
    """Wall-clock and process CPU seconds of ``iters`` calls of ``fn``
    after ``warmup`` untimed calls: ``{'wall': [...], 'cpu': [...]}``."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(iters):
        sync(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        sync(device)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return dict(wall=wall, cpu=cpu)


def time_alternately(fns: Sequence[Callable[[], None]], warmup: int,
                     iters: int, device: str) -> List[Dict[str, List[float]]]:
    """Time several closures in turns (A B A B ...), so that slow drifts of
    the machine's load hit all of them alike: ``warmup`` untimed rounds,
    then ``iters`` timed ones; per closure ``{'wall': [...], 'cpu':
    [...]}`` as :func:`time_fn`."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [{'wall': [], 'cpu': []} for _ in fns]
    for _ in range(iters):
        for fn, record in zip(fns, times):
            one = time_fn(fn, 0, 1, device)
            for key in record:
                record[key] += one[key]
    return times


def profile_fn(fn: Callable[[], None], device: str, rows: int = 25) -> str:
    """``torch.profiler`` table of one call of ``fn``, the ``rows`` ops
    with the most self time (CUDA time on CUDA)."""
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU]
    if device.startswith('cuda'):
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        fn()
        sync(device)
    key = 'self_cuda_time_total' if device.startswith('cuda') \
        else 'self_cpu_time_total'
    return prof.key_averages().table(sort_by=key, row_limit=rows)
