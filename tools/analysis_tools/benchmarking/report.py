"""The benchmark's report: markdown tables of the results, the header line
and where they are written. Every ``x rgb`` column is the ratio to the
``rgb`` row of the same run (``-`` without one)."""
import json
import os
import os.path as osp
import platform
from typing import List, Optional

import torch


def format_ratio(value: Optional[float], base: Optional[float]) -> str:
    """``value / base`` with two decimals, ``-`` if either is missing."""
    return f'{value / base:.2f}' if value and base else '-'


def format_scaled(value: Optional[float], scale: float, spec: str) -> str:
    """``value * scale`` in the format ``spec``, ``-`` if missing."""
    return '-' if value is None else format(value * scale, spec)


def format_mib(num_bytes: float) -> str:
    return f'{num_bytes / 2**20:.0f}'


def load_average() -> str:
    """The 1 / 5 / 15 min load averages, ``n/a`` where unavailable."""
    try:
        return '/'.join(f'{v:.1f}' for v in os.getloadavg())
    except OSError:
        return 'n/a'


def machine_description() -> str:
    """The CPU model (``/proc/cpuinfo``, else ``platform``) and the number
    of logical CPUs, e.g. ``'AMD EPYC, 2 logical CPUs'``."""
    name = ''
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    name = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    name = name or platform.processor() or platform.machine() or 'unknown CPU'
    return f'{name}, {os.cpu_count()} logical CPUs'


def format_header(args,
                  elapsed: float,
                  load_start: str,
                  malloc: Optional[str] = None) -> str:
    """The report's first line: torch, device, threads, timer, ``malloc``
    (if given), warm-up / iterations, total seconds and the load average
    at the start and now."""
    malloc = f'{malloc}, ' if malloc else ''
    return (f'torch {torch.__version__}, {args.device}, {args.threads} '
            f'threads, {args.timer} time, {malloc}warmup {args.warmup}, '
            f'iters {args.iters} (median), total {elapsed:.0f}s, load '
            f'average {load_start} -> {load_average()}\n')


def format_tables(results: dict, args) -> str:
    """One markdown table per size, then the target ratios
    (:func:`format_targets`)."""
    lines = []
    for size in args.sizes:
        key = f'{size[0]}x{size[1]}'
        rows = results[key]
        base = rows.get('rgb', {})
        lines += [
            f'### {args.arch.upper()} at {key} (H x W), {args.device}, '
            f'{args.threads} threads, E={args.head_channels}', '',
            '| model | params (M) | x rgb | of which fusion (M) | '
            'GMACs (b1) | x rgb | of which fusion | latency b1 (ms) | '
            f'x rgb | throughput b{args.batch_size} (img/s) | '
            f'train step b{args.train_batch_size} (s) | x rgb | '
            'peak mem infer (MiB) | x rgb | peak mem train (MiB) | x rgb |',
            '|---' * 16 + '|'
        ]
        binfer, btrain = base.get('infer', {}), base.get('train', {})
        bparams = binfer.get('params', btrain.get('params'))
        for name in args.models:
            if name not in rows:
                continue
            infer = rows[name].get('infer', {})
            train = rows[name].get('train', {})
            params = infer.get('params', train.get('params'))
            fusion_params = infer.get('fusion_params',
                                      train.get('fusion_params'))
            cells = [
                name,
                format_scaled(params, 1e-6, '.2f'),
                format_ratio(params, bparams),
                format_scaled(fusion_params, 1e-6, '.2f'),
                format_scaled(infer.get('macs'), 1e-9, '.1f'),
                format_ratio(infer.get('macs'), binfer.get('macs')),
                format_scaled(infer.get('fusion_macs'), 1e-9, '.1f'),
                format_scaled(infer.get('median'), 1e3, '.0f'),
                format_ratio(infer.get('median'), binfer.get('median')),
                format_scaled(infer.get('throughput'), 1, '.2f'),
                format_scaled(train.get('median'), 1, '.2f'),
                format_ratio(train.get('median'), btrain.get('median')),
                format_scaled(infer.get('peak_memory'), 2**-20, '.0f'),
                format_ratio(
                    infer.get('peak_memory'), binfer.get('peak_memory')),
                format_scaled(train.get('peak_memory'), 2**-20, '.0f'),
                format_ratio(
                    train.get('peak_memory'), btrain.get('peak_memory'))
            ]
            lines.append('| ' + ' | '.join(cells) + ' |')
        lines.append('')
    lines += format_targets(results, args)
    return '\n'.join(lines)


def format_targets(results: dict, args) -> List[str]:
    """The TokenFusion target ratios at the first size, those whose models
    and modes were measured (none: an empty list)."""
    size = f'{args.sizes[0][0]}x{args.sizes[0][1]}'
    rows = results.get(size, {})

    def get(model, mode, field):
        return rows.get(model, {}).get(mode, {}).get(field)

    lines = [
        f'### Targets ({size})', '', '| ratio | value | target | met |',
        '|---|---|---|---|'
    ]
    header_lines = len(lines)

    def add(label, num, den, target, better):
        if num is None or den is None:  # a model or mode not measured
            return
        value = num / den
        lines.append(f'| {label} | {value:.2f} | {target} | '
                     f'{"yes" if better(value) else "NO"} |')

    add('tokenfusion-m2 / rgb inference latency (b1)',
        get('tokenfusion-m2', 'infer', 'median'),
        get('rgb', 'infer', 'median'), '<= 2.1', lambda v: v <= 2.1)
    add(
        f'reference-m2 / tokenfusion-m2 train step '
        f'(b{args.train_batch_size})', get('reference-m2', 'train', 'median'),
        get('tokenfusion-m2', 'train', 'median'), '>= 1.3', lambda v: v >= 1.3)
    add('tokenfusion-m2 / reference-m2 peak train memory',
        get('tokenfusion-m2', 'train', 'peak_memory'),
        get('reference-m2', 'train', 'peak_memory'), '< 1', lambda v: v < 1)
    if len(lines) == header_lines:
        return []
    lines.append('')
    return lines


def format_paired(results: List[dict], args) -> str:
    """The ``--paired`` ratios, timed alternately in one process."""
    size = f'{args.sizes[0][0]}x{args.sizes[0][1]}'
    lines = [
        f'\n### Target ratios timed alternately in one process ({size}, '
        f'{args.paired} rounds, {args.timer} time)', '',
        '| A / B | mode | batch | median A (s) | median B (s) | '
        'median of A/B per round |', '|---|---|---|---|---|---|'
    ]
    for r in results:
        lines.append(f"| {r['model']} / {r['baseline']} | {r['mode']} | "
                     f"{r['batch']} | {r['medians'][0]:.3f} | "
                     f"{r['medians'][1]:.3f} | {r['ratio']:.2f} |")
    return '\n'.join(lines) + '\n'


def format_scaling(results: dict, args) -> str:
    """The fitted exponents per model, then time and MACs per size."""
    sizes = ', '.join(f'{h}x{w}' for h, w in args.scaling_sizes)
    lines = [
        f'### Token scaling, {args.arch.upper()}, {args.device}, '
        f'{args.threads} threads, {args.timer} time, sizes {sizes}', '',
        '| model | params (M) | k (time ∝ tokens^k) | '
        'k (MACs ∝ tokens^k) |', '|---|---|---|---|'
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['rows'][0]['params'] / 1e6:.2f} | "
                     f"{format_scaled(r['k_time'], 1, '.3f')} | "
                     f"{format_scaled(r['k_macs'], 1, '.3f')} |")
    lines += [
        '', '| model | H x W | tokens (stage 1) | latency b1 (ms) | '
        'GMACs (b1) |', '|---|---|---|---|---|'
    ]
    for name, r in results.items():
        for row in r['rows']:
            h, w = row['size']
            lines.append(f"| {name} | {h}x{w} | {row['tokens']} | "
                         f"{row['median'] * 1e3:.0f} | "
                         f"{row['macs'] / 1e9:.2f} |")
    return '\n'.join(lines) + '\n'


def write_report(header: str, report: str, results: dict, args) -> None:
    """Print header and tables; write them to ``args.out`` and the raw
    results to ``args.json_out`` where given."""
    print('\n' + header + '\n' + report)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            f.write(header + '\n' + report + '\n')
    if args.json_out:
        with open(args.json_out, 'w') as f:
            json.dump(results, f, indent=1)


def format_backends(results: List[dict], args) -> str:
    """The ``--backend`` table: per model and size the batch-1 latency of
    PyTorch eager and of onnxruntime (medians), the ratio measured in the
    same rounds, the largest output difference, export time and file
    size."""
    versions = results[0] if results else {}
    lines = [
        f'### ONNX Runtime vs PyTorch eager, {args.arch.upper()}, '
        f'{args.device}, {args.threads} threads, {args.timer} time, '
        f'{machine_description()}; torch {versions.get("torch_version")}, '
        f'onnxruntime {versions.get("onnxruntime_version")}', '',
        '| model | H x W | PyTorch eager b1 (ms) | onnxruntime b1 (ms) | '
        'onnxruntime / PyTorch | max abs diff (logits / streams) | '
        'export (s) | ONNX (MiB) |', '|---' * 8 + '|'
    ]
    for r in results:
        h, w = r['size']
        diffs = r['max_abs_diff']
        lines.append(f"| {r['model']} | {h}x{w} | "
                     f"{r['medians'][0] * 1e3:.0f} | "
                     f"{r['medians'][1] * 1e3:.0f} | {r['ratio']:.2f} | "
                     f"{diffs['logits']:.1e} / {diffs['stream_logits']:.1e} "
                     f"| {r['export_seconds']:.0f} | "
                     f"{format_mib(r['onnx_bytes'])} |")
    lines += [
        '', f'Ratio: median over {args.iters} rounds of onnxruntime / '
        f'PyTorch, the two timed in turns in one process after '
        f'{args.warmup} warm-up round(s); latencies are medians.'
    ]
    return '\n'.join(lines) + '\n'
