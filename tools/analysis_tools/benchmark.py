"""Benchmark TokenFusion and GeminiFusion against RGB-only / early-concat
SegFormer and the reference code's formulation of TokenFusion.

Models (``--models``; MiT backbone ``--arch`` + the NVlabs SegFormer
all-MLP head with ``--head-channels`` E for every model, so that head cost
is comparable; built by :mod:`benchmarking.models`):

* ``rgb``: RGB-only SegFormer, mmseg's ``EncoderDecoder`` around
  ``FusedMiT(num_modalities=1)`` (which equals mmseg's
  ``MixVisionTransformer``); ``rgb-mmseg`` uses mmseg's class;
* ``concat``: early fusion, a 6-channel input in one stream;
* ``tokenfusion-m2`` / ``-m3``: ``MultiStreamEncoderDecoder`` around
  ``FusedMiT(fusion=dict(type='TokenExchange'))`` (modalities stacked in
  the batch, one call of every shared layer, SDPA attention), the head run
  once on the modality stack, the learned logit ensemble and the loss of
  the segmentor's own ``predict`` / ``loss``;
* ``reference-m2`` / ``-m3``: the same segmentor and parameters, the
  backbone computed as the reference code does
  (``reference_formulation.py``: per-modality lists, Python loops around
  every shared layer, explicit softmax attention, one LayerNorm per
  modality, boolean-mask exchange); its pyramids are stacked for the
  segmentor, so the head runs once on the stack here, not once per
  modality as in the reference;
* ``geminifusion``: ``MultiStreamEncoderDecoder`` around
  ``FusedMiT(fusion=dict(type='GeminiFusion', heads=8))`` (M = 2, a
  GeminiFusion module in every block, no score predictors).

Measurements, for every model and ``--sizes`` entry (H x W):

* params: all parameters of backbone + head (+ ensemble weights); "of
  which fusion": those of the fusion modules (``fusion_layers``: GeminiFusion
  modules, TokenFusion score predictors; the ``hub``; the reference's
  ``score_predictor``; 0 for rgb / concat).
* GMACs: multiply-accumulates of one batch-1 forward (backbone + head
  logits), counted at dispatcher level (:mod:`benchmarking.macs`: matmuls,
  convolutions, SDPA; no norms, activations, element-wise ops or resizes);
  "of which fusion": those inside the fusion modules. ``--check-flops``
  verifies on a tiny case that ``FusedMiT`` and the reference formulation
  give identical counts.
* latency: batch-1 inference (``predict``, eval mode, ``torch.no_grad``),
  median over ``--iters`` timed runs after ``--warmup`` runs; throughput:
  images / s of a batch-``--batch-size`` inference (median as well).
  ``--timer wall`` (default) measures wall-clock time
  (``torch.cuda.synchronize`` around every run on CUDA); ``--timer cpu``
  the process' CPU time, which with ``--threads 1`` does not count the time
  other processes take the core away (on a shared 2-core machine, OpenMP
  with 2 threads under load is many times slower and very noisy).
  ``--paired N`` times the two target pairs alternately in one process
  (A B A B ...), so that slow drifts of the machine's load hit both;
  ``--caching-malloc`` times with a glibc malloc that reuses freed memory
  (by default every block above 32 MiB is mmapped and page-faulted anew
  each step, which is system CPU time and grows with the size of the
  stacked tensors).
* train step: the segmentor's ``loss`` (``MultiStreamEncoderDecoder``:
  cross-entropy of every stream's logits and of the ensemble at input
  resolution + the fusion layers' loss, TokenFusion's λ · Σ scores;
  ``EncoderDecoder``: the one cross-entropy) + backward + ``AdamW.step`` at
  batch ``--train-batch-size``, median as well. What the steps leave out
  of training (data preprocessor, optimiser wrapper, SyncBN) and why:
  :mod:`benchmarking.steps`.
* peak memory: every (model, size, mode) runs in a fresh subprocess
  (:mod:`benchmarking.isolation`). On CUDA it is
  ``torch.cuda.max_memory_allocated`` minus the memory allocated after
  building model and inputs; on CPU the growth of the process' peak
  resident set size over that baseline (``VmHWM`` after a reset through
  ``/proc/self/clear_refs``, :mod:`benchmarking.memory`), in a second
  fresh subprocess of one step whose glibc malloc returns freed tensor
  memory at once (``MALLOC_MMAP_THRESHOLD_=65536``; the timing process'
  number is kept in the JSON output as ``peak_memory_timing_process``).
  Training memory includes gradients and AdamW state, inference memory the
  activations of the batch-1 forward.

``--scaling``: instead of the tables above, for every ``--models`` entry
time batch-1 inference and count its MACs at every ``--scaling-sizes``
entry (default 240x320, 480x640, 960x1280), and fit the exponent k of
time ∝ tokens^k and MACs ∝ tokens^k (:mod:`benchmarking.scaling`; tokens =
stage-1 tokens ceil(H/4) x ceil(W/4)). Example::

    python tools/analysis_tools/benchmark.py --scaling --arch b0 \
        --models tokenfusion-m2 geminifusion --warmup 1 --iters 1 \
        --threads 1 --timer cpu

``--backend ort``: instead of the tables, for every ``--models`` entry
(``tokenfusion-mN``, ``geminifusion``; default both M = 2 models) and
``--sizes`` entry, batch-1 inference of the deployment graph exported by
``tools/deployment/pytorch2onnx.py`` (normalisation of raw inputs +
``encode_decode``) in onnxruntime vs the same module in PyTorch eager,
timed in turns in one process (:mod:`benchmarking.backends`; needs
``requirements/deploy.txt``). The numbers of ``docs/deployment.md``::

    python tools/analysis_tools/benchmark.py --backend ort --arch b2 \
        --sizes 480x640 --warmup 2 --iters 10 --threads 1 --timer cpu \
        --out work_dirs/benchmark/ort_b2_480x640.md

Every ``x rgb`` column is the ratio to the ``rgb`` row of the same run.
GeminiFusion vs TokenFusion vs early concat at real size (MiT-B3, the
smallest GeminiFusion release), one run::

    python tools/analysis_tools/benchmark.py --arch b3 --sizes 480x640 \
        --models rgb concat tokenfusion-m2 geminifusion --warmup 1 \
        --iters 3 --threads 1 --timer cpu \
        --out work_dirs/benchmark/b3_480x640.md

Example (CPU: about 33 min for B2 with one thread of a 2-core VM; the two
target ratios alone, ``--paired-only --paired 5``, take about 4 min)::

    python tools/analysis_tools/benchmark.py --arch b2 --warmup 1 \
        --iters 3 --threads 1 --timer cpu --paired 5 \
        --out work_dirs/benchmark/benchmark_b2.md
"""
import argparse
import os
import os.path as osp
import sys
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from projects.multimodal_seg.models import MIT_ARCHS
from tools.analysis_tools.benchmarking.backends import (BACKENDS,
                                                        check_backend_model)
from tools.analysis_tools.benchmarking.isolation import (measure,
                                                         run_in_subprocess,
                                                         run_paired,
                                                         timing_env)
from tools.analysis_tools.benchmarking.macs import check_flops
from tools.analysis_tools.benchmarking.models import (ALL_MODELS,
                                                      DEFAULT_MODELS,
                                                      parse_model_name)
# yapf: disable
from tools.analysis_tools.benchmarking.report import (format_backends,
                                                      format_header,
                                                      format_mib,
                                                      format_paired,
                                                      format_scaling,
                                                      format_tables,
                                                      load_average,
                                                      write_report)
# yapf: enable
from tools.analysis_tools.benchmarking.scaling import (SCALING_SIZES,
                                                       run_scaling)
from tools.analysis_tools.benchmarking.steps import MODES
from tools.analysis_tools.benchmarking.timing import TIMERS
from tools.analysis_tools.benchmarking.worker import run_spec

# the models of --backend when --models is not given
DEFAULT_BACKEND_MODELS = ('tokenfusion-m2', 'geminifusion')


def parse_size(text: str):
    h, w = text.lower().split('x')
    return int(h), int(w)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Benchmark TokenFusion / GeminiFusion vs RGB-only / '
        'concat SegFormer and the reference formulation')
    parser.add_argument('--arch', default='b2', choices=sorted(MIT_ARCHS))
    parser.add_argument(
        '--models',
        nargs='+',
        help=f'from {ALL_MODELS} (any tokenfusion-mN / reference-mN); '
        f'default {list(DEFAULT_MODELS)}, with --backend '
        f'{list(DEFAULT_BACKEND_MODELS)}')
    parser.add_argument(
        '--sizes',
        nargs='+',
        type=parse_size,
        default=[(480, 640), (500, 500)],
        help='input sizes HxW; targets use the first')
    parser.add_argument(
        '--batch-size', type=int, default=4, help='throughput batch')
    parser.add_argument('--train-batch-size', type=int, default=2)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument(
        '--threads',
        type=int,
        default=os.cpu_count(),
        help='torch.set_num_threads')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument(
        '--timer',
        default='wall',
        choices=list(TIMERS),
        help='wall clock, or process CPU time (CPU, meaningful with '
        '--threads 1 only: robust to other processes on the machine)')
    parser.add_argument('--head-channels', type=int, default=256)
    parser.add_argument('--num-classes', type=int, default=40)
    parser.add_argument(
        '--backbone-only',
        action='store_true',
        help='benchmark the backbones without decode head')
    parser.add_argument(
        '--modes', nargs='+', default=['infer', 'train'], choices=list(MODES))
    parser.add_argument(
        '--caching-malloc',
        action='store_true',
        help='time (not memory) with glibc malloc tuned to keep and reuse '
        'freed memory (MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ / '
        'MALLOC_TOP_PAD_); by default large tensors are mmapped and page-'
        'faulted anew every step, which costs CPU time (sys)')
    parser.add_argument(
        '--in-process',
        action='store_true',
        help='no subprocess per measurement (CPU memory is then wrong)')
    parser.add_argument(
        '--profile',
        action='store_true',
        help='print a torch.profiler table per measurement')
    parser.add_argument(
        '--check-flops',
        action='store_true',
        help='check that ours and the reference formulation count the '
        'same MACs on a tiny case, then continue')
    parser.add_argument(
        '--paired',
        type=int,
        default=0,
        metavar='ROUNDS',
        help='also time the two target pairs (tokenfusion-m2 vs rgb '
        'inference, reference-m2 vs tokenfusion-m2 training) alternately '
        'in one process for ROUNDS rounds, at the first size')
    parser.add_argument(
        '--paired-only',
        action='store_true',
        help='only the --paired measurement')
    parser.add_argument(
        '--scaling',
        action='store_true',
        help='only the token-scaling measurement: batch-1 inference time '
        'and MACs of every --models entry at every --scaling-sizes entry, '
        'and the fitted exponents k of time / MACs ∝ tokens^k')
    parser.add_argument(
        '--scaling-sizes',
        nargs='+',
        type=parse_size,
        default=[list(s) for s in SCALING_SIZES],
        help='input sizes HxW of --scaling')
    parser.add_argument(
        '--backend',
        choices=list(BACKENDS),
        help='only the deployment comparison: the exported ONNX graph in '
        'this runtime vs PyTorch eager, batch 1, for every --models and '
        '--sizes entry, timed in turns in one process (--warmup rounds, '
        'then --iters rounds)')
    parser.add_argument('--out', help='write the markdown tables here')
    parser.add_argument('--json-out', help='write the raw results here')
    args = parser.parse_args(argv)
    if args.models is None:
        args.models = list(
            DEFAULT_BACKEND_MODELS if args.backend else DEFAULT_MODELS)
    return args


def base_spec_of(args) -> dict:
    """What every measurement of this run shares (see
    :mod:`benchmarking.worker` for the keys)."""
    return dict(
        arch=args.arch,
        throughput_batch=args.batch_size,
        warmup=args.warmup,
        iters=args.iters,
        threads=args.threads,
        timer=args.timer,
        device=args.device,
        head_channels=args.head_channels,
        num_classes=args.num_classes,
        backbone_only=args.backbone_only,
        caching_malloc=args.caching_malloc,
        profile=args.profile)


def report_flop_check() -> None:
    """``--check-flops``: ours vs the reference formulation, M = 2 and 3."""
    for m in (2, 3):
        counts = check_flops(m)
        status = 'equal' if counts['ours'] == counts['reference'] \
            else 'DIFFERENT'
        print(f'tiny M={m} MACs: {counts} -> {status}', flush=True)


def run_tables(args, base_spec: dict, start: float) -> dict:
    """Every (size, model, mode) measurement of the tables, with a
    progress line each: ``{size: {model: {mode: result}}}``."""
    results = {}
    for size in args.sizes:
        key = f'{size[0]}x{size[1]}'
        results[key] = {}
        for name in args.models:
            results[key][name] = {}
            for mode in args.modes:
                spec = dict(
                    base_spec,
                    model=name,
                    size=size,
                    mode=mode,
                    batch=1 if mode == 'infer' else args.train_batch_size)
                r = measure(spec, args.in_process)
                results[key][name][mode] = r
                extra = f", {r['throughput']:.2f} img/s" \
                    if 'throughput' in r else ''
                print(
                    f'[{time.time() - start:6.0f}s] {key} {name:15s} '
                    f"{mode:5s} median {r['median']:.3f}s "
                    f"peak {format_mib(r['peak_memory'])} MiB{extra}",
                    flush=True)
                if r.get('profile'):
                    print(r['profile'], flush=True)
    return results


def run_backends(args, base_spec: dict, start: float) -> list:
    """``--backend``: the comparison of every (size, model), each in a
    fresh process unless ``--in-process``, with a progress line each."""
    results = []
    for size in args.sizes:
        for name in args.models:
            spec = dict(
                base_spec,
                model=name,
                size=size,
                mode='infer',
                batch=1,
                backend=args.backend)
            r = run_spec(spec) if args.in_process else \
                run_in_subprocess(spec, timing_env(spec))
            results.append(r)
            print(
                f'[{time.time() - start:6.0f}s] {size[0]}x{size[1]} '
                f'{name:15s} PyTorch {r["medians"][0]:.3f}s '
                f'{args.backend} {r["medians"][1]:.3f}s ratio '
                f'{r["ratio"]:.2f}',
                flush=True)
    return results


def main(argv=None):
    args = parse_args(argv)
    for name in args.models:
        parse_model_name(name)
        if args.backend:
            check_backend_model(name)
    if args.check_flops:
        report_flop_check()
    if args.timer == 'cpu' and (args.threads > 1 or args.device != 'cpu'):
        print('warning: --timer cpu is meaningful on CPU with --threads 1')
    load_start = load_average()
    start = time.time()
    base_spec = base_spec_of(args)
    if args.backend:
        backend = run_backends(args, base_spec, start)
        report = format_backends(backend, args)
        header = format_header(args, time.time() - start, load_start)
        write_report(header, report, dict(backend=backend), args)
        return
    if args.scaling:
        scaling = run_scaling(args, base_spec)
        report = format_scaling(scaling, args)
        header = format_header(args, time.time() - start, load_start)
        write_report(header, report, dict(scaling=scaling), args)
        return
    results = {} if args.paired_only else run_tables(args, base_spec, start)
    report = format_tables(results, args) if results else ''
    if args.paired:
        paired = run_paired(args, base_spec)
        results['paired'] = paired
        report += format_paired(paired, args)
    malloc = 'caching malloc' if args.caching_malloc else 'default malloc'
    header = format_header(args, time.time() - start, load_start, malloc)
    write_report(header, report, results, args)


if __name__ == '__main__':
    main()
