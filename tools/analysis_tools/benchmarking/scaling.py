"""Token scaling: batch-1 inference time and MACs of every model at several
input sizes, and the exponent k of time ∝ tokens^k and MACs ∝ tokens^k
fitted by least squares on log-log.

Tokens are stage-1 tokens ceil(H/4) x ceil(W/4) (:func:`num_tokens`), so a
constant factor on tokens changes only the prefactor of the fit. Quadratic
attention would give k -> 2; MiT's spatial-reduction attention (keys
reduced by sr^2 = 64/16/4/1 per stage) and GeminiFusion's pixel-wise
fusion (linear in tokens) give k close to 1 at the default sizes.
"""
import math
import time
from typing import Sequence, Tuple

from tools.analysis_tools.benchmarking.isolation import (run_in_subprocess,
                                                         timing_env)
from tools.analysis_tools.benchmarking.worker import run_worker

SCALING_SIZES = ((240, 320), (480, 640), (960, 1280))


def fit_power_law(xs: Sequence[float],
                  ys: Sequence[float]) -> Tuple[float, float]:
    """Least-squares fit of log y = log c + k log x.

    Args:
        xs, ys: Sequences of positive numbers of equal length >= 2, with at
            least two distinct ``xs``.

    Returns:
        tuple: ``(k, c)`` with y ≈ c * x**k (exact for exact power laws up
        to float rounding).
    """
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError('need >= 2 (x, y) pairs of equal length')
    if min(xs) <= 0 or min(ys) <= 0:
        raise ValueError('a power law fit needs positive values')
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((a - mx)**2 for a in lx)
    if sxx == 0:
        raise ValueError('need at least two distinct x values')
    k = sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sxx
    return k, math.exp(my - k * mx)


def num_tokens(size: Sequence[int]) -> int:
    """Stage-1 tokens of an H x W input (patch embed 7x7, stride 4, pad
    3)."""
    h, w = size
    return -(-h // 4) * -(-w // 4)


def run_scaling(args, base_spec: dict) -> dict:
    """Batch-1 inference time and MACs of every ``args.models`` entry at
    every ``args.scaling_sizes`` entry (one fresh process each unless
    ``--in-process``; no memory measurement), and the fitted exponents.

    Returns:
        dict: per model ``rows`` (size, tokens, median, macs, params per
        size), ``k_time`` and ``k_macs`` (None with fewer than two distinct
        token counts).
    """
    results = {}
    start = time.time()
    for name in args.models:
        rows = []
        for size in args.scaling_sizes:
            spec = dict(
                base_spec,
                model=name,
                size=size,
                mode='infer',
                batch=1,
                throughput_batch=0,
                profile=False,
                measure='scaling')
            if args.in_process:
                r = run_worker(spec)
            else:
                r = run_in_subprocess(spec, timing_env(spec))
            rows.append(
                dict(
                    size=list(size),
                    tokens=num_tokens(size),
                    median=r['median'],
                    macs=r['macs'],
                    params=r['params']))
            print(
                f'[{time.time() - start:6.0f}s] scaling {name:15s} '
                f"{size[0]}x{size[1]} median {r['median']:.3f}s "
                f"{r['macs'] / 1e9:.1f} GMACs",
                flush=True)
        tokens = [row['tokens'] for row in rows]
        k_time = k_macs = None
        if len(set(tokens)) > 1:
            k_time = fit_power_law(tokens, [row['median'] for row in rows])[0]
            k_macs = fit_power_law(tokens, [row['macs'] for row in rows])[0]
        results[name] = dict(rows=rows, k_time=k_time, k_macs=k_macs)
    return results
