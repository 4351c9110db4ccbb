"""Benchmark TokenFusion against RGB-only / early-concat SegFormer and the
reference code's formulation of the same network.

Models (MiT backbone ``--arch`` + the NVlabs SegFormer all-MLP head with
``--head-channels`` E for every model, so that head cost is comparable):

* ``rgb``: RGB-only MiT (``TokenFusionMiT(num_modalities=1)``, which equals
  mmseg's ``MixVisionTransformer``); ``rgb-mmseg`` uses mmseg's class;
* ``concat``: early fusion, a 6-channel input in one stream;
* ``tokenfusion-m2`` / ``-m3``: our ``TokenFusionMiT`` (modalities stacked
  in the batch, one call of every shared layer, SDPA attention) with the
  head run once on the modality stack, and the learned logit ensemble;
* ``reference-m2`` / ``-m3``: the same parameters computed as the reference
  code does (``reference_formulation.py``: per-modality lists, Python loops
  around every shared layer, explicit softmax attention, one LayerNorm per
  modality, boolean-mask exchange), the head called once per modality.
* ``geminifusion``: ``TokenFusionMiT(fusion='geminifusion',
  fusion_heads=8)`` (M = 2, a GeminiFusion module in every block, no score
  predictors), the head run once on the modality stack, and the ensemble.

Measurements, for every model and ``--sizes`` entry (H x W):

* params: all parameters of backbone + head (+ ensemble weights); "of
  which fusion": those of the fusion modules (GeminiFusion ``gemini``,
  TokenFusion ``score_predictor``, hub ``extra_score_predictor``; 0 for
  rgb / concat).
* GMACs: multiply-accumulates of one batch-1 inference forward, counted
  with the formulas of ``torch.utils.flop_counter`` in a dispatch mode
  (:class:`MacCounter`; dispatcher level, so
  the same ops are counted however the model is written: ``mm`` / ``addmm``
  (linear), ``bmm`` / ``baddbmm`` (per-modality linears, explicit attention
  products), convolutions (grouped / depthwise with their group count) and
  ``scaled_dot_product_attention``, whose CPU kernel
  ``_scaled_dot_product_flash_attention_for_cpu`` is registered here since
  torch does not count it). Norms, activations, softmax, element-wise ops
  and the bilinear resizes are not counted (fvcore / mmengine convention).
  "of which fusion": the MACs counted inside the fusion modules
  (:func:`count_macs_split`, forward hooks).
  ``--check-flops`` verifies on a tiny case that TokenFusionMiT and the
  reference formulation give identical counts.
* latency: batch 1 inference (eval mode, ``torch.no_grad``), median over
  ``--iters`` timed runs after ``--warmup`` runs; throughput: images / s of
  a batch-``--batch-size`` inference (median as well). ``--timer wall``
  (default) measures wall-clock time (``torch.cuda.synchronize`` around
  every run on CUDA); ``--timer cpu`` the process' CPU time, which with
  ``--threads 1`` does not count the time other processes take the core
  away (on a shared 2-core machine, OpenMP with 2 threads under load is
  many times slower and very noisy). ``--paired N`` times the two target
  pairs alternately in one process (A B A B ...), so that slow drifts of
  the machine's load hit both; ``--caching-malloc`` times with a glibc
  malloc that reuses freed memory (by default every block above 32 MiB is
  mmapped and page-faulted anew each step, which is system CPU time and
  grows with the size of the stacked tensors).
* train step: forward + loss (cross-entropy of every modality's logits and
  of the ensemble at input resolution + 1e-6 x the l1 token-score
  sparsity, as ``TokenFusionEncoderDecoder``) + backward + ``AdamW.step``
  at batch ``--train-batch-size``, median as well.
* peak memory: every (model, size, mode) runs in a fresh subprocess. On
  CUDA it is ``torch.cuda.max_memory_allocated`` minus the memory allocated
  after building model and inputs. On CPU it is the growth of the process'
  peak resident set size over that baseline, in a second fresh subprocess
  of one step: the peak is reset by writing ``5`` to
  ``/proc/self/clear_refs`` and read as ``VmHWM`` from
  ``/proc/self/status`` (Linux); without that interface the growth of
  ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is used, which misses peaks
  below the import-time high-water mark. That process runs with
  ``MALLOC_MMAP_THRESHOLD_=65536`` so that glibc returns freed tensor
  memory at once and the resident set follows the live tensors (with the
  default allocator, freed pages are kept and reused and the RSS peak
  depends on fragmentation; that number is kept in the JSON output as
  ``peak_memory_timing_process``). Training memory includes gradients and
  AdamW state, inference memory the activations of the batch-1 forward.

``--scaling``: instead of the tables above, for every ``--models`` entry
time batch-1 inference and count its MACs at every ``--scaling-sizes``
entry (default 240x320, 480x640, 960x1280), and fit the exponent k of
time ∝ tokens^k and MACs ∝ tokens^k by least squares on log-log
(:func:`fit_power_law`; tokens = stage-1 tokens ceil(H/4) x ceil(W/4), so
a constant factor on tokens changes only the prefactor). Quadratic
attention would give k -> 2; MiT's spatial-reduction attention (keys
reduced by sr^2 = 64/16/4/1 per stage) and GeminiFusion's pixel-wise
fusion (linear in tokens) give k close to 1 at these sizes. Example::

    python tools/analysis_tools/benchmark.py --scaling --arch b0 \
        --models tokenfusion-m2 geminifusion --warmup 1 --iters 1 \
        --threads 1 --timer cpu

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
import json
import math
import os
import os.path as osp
import re
import resource
import statistics
import subprocess
import sys
import time
import warnings
from typing import Optional

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from projects.tokenfusion.models import MIT_ARCHS  # noqa: E402
from projects.tokenfusion.models import SegFormerMLPHead  # noqa: E402
from projects.tokenfusion.models import TokenFusionMiT  # noqa: E402
from tools.analysis_tools.reference_formulation import \
    ReferenceTokenFusionMiT  # noqa: E402

ALL_MODELS = ('rgb', 'rgb-mmseg', 'concat', 'tokenfusion-m2', 'tokenfusion-m3',
              'reference-m2', 'reference-m3', 'geminifusion')
DEFAULT_MODELS = ('rgb', 'concat', 'tokenfusion-m2', 'tokenfusion-m3',
                  'reference-m2', 'reference-m3', 'geminifusion')
SCALING_SIZES = ((240, 320), (480, 640), (960, 1280))
RESULT_TAG = 'BENCHMARK_RESULT '


class BenchSegmentor(nn.Module):
    """Backbone + SegFormer MLP head (+ ensemble for M > 1) with the
    inference forward and training loss of ``TokenFusionEncoderDecoder``.

    Args:
        backbone (nn.Module): ``TokenFusionMiT`` (features stacked as
            (M*B, ...)), ``ReferenceTokenFusionMiT`` (per-modality lists)
            or mmseg's ``MixVisionTransformer`` (a list of features).
        head (nn.Module): ``SegFormerMLPHead``.
        num_modalities (int): M.
        sparsity_weight (float): λ of the score sparsity loss.
    """

    def __init__(self,
                 backbone: nn.Module,
                 head: nn.Module,
                 num_modalities: int,
                 sparsity_weight: float = 1e-6) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.num_modalities = num_modalities
        self.sparsity_weight = sparsity_weight
        self.reference = isinstance(backbone, ReferenceTokenFusionMiT)
        self.alpha = nn.Parameter(torch.ones(num_modalities)) \
            if num_modalities > 1 else None

    def modality_logits(self, x: torch.Tensor):
        """(M, B, K, h, w) logits and a flat list of score tensors."""
        out = self.backbone(x)
        if self.reference:
            pyramids, scores = out
            logits = torch.stack([self.head(p) for p in pyramids])
            return logits, [s for block in scores for s in block]
        if isinstance(out, tuple):  # TokenFusionMiT
            feats, scores = out
        else:  # mmseg MixVisionTransformer
            feats, scores = out, []
        logits = self.head(feats)
        return logits.reshape(self.num_modalities, -1,
                              *logits.shape[1:]), scores

    def ensemble(self, logits: torch.Tensor) -> torch.Tensor:
        if self.alpha is None:
            return logits[0]
        weights = self.alpha.softmax(0).view(-1, 1, 1, 1, 1)
        return (weights * logits.detach()).sum(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Inference: ensemble logits at input resolution."""
        logits, _ = self.modality_logits(x)
        return F.interpolate(
            self.ensemble(logits),
            size=x.shape[2:],
            mode='bilinear',
            align_corners=False)

    def loss(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits, scores = self.modality_logits(x)
        outputs = list(logits)
        if self.alpha is not None:
            outputs.append(self.ensemble(logits))
        loss = sum(
            F.cross_entropy(
                F.interpolate(
                    y,
                    size=labels.shape[1:],
                    mode='bilinear',
                    align_corners=False),
                labels,
                ignore_index=255) for y in outputs)
        if scores:
            loss = loss + self.sparsity_weight * sum(s.sum() for s in scores)
        return loss


def parse_model_name(name: str):
    """-> (kind, num_modalities, input channels)."""
    if name in ('rgb', 'rgb-mmseg'):
        return name, 1, 3
    if name == 'concat':
        return name, 1, 6
    if name == 'geminifusion':
        return name, 2, 6
    match = re.fullmatch(r'(tokenfusion|reference)-m(\d+)', name)
    if not match:
        raise ValueError(f'unknown model {name!r}')
    m = int(match.group(2))
    return match.group(1), m, 3 * m


def build_backbone(name: str, arch: str) -> nn.Module:
    kind, m, channels = parse_model_name(name)
    if kind == 'rgb-mmseg':
        from mmseg.models.backbones import MixVisionTransformer
        preset = MIT_ARCHS[arch]
        backbone = MixVisionTransformer(
            in_channels=3,
            embed_dims=preset['embed_dims'],
            num_layers=list(preset['num_layers']),
            num_heads=[1, 2, 5, 8],
            drop_path_rate=0.1)
        backbone.init_weights()
        return backbone
    if kind == 'geminifusion':
        backbone = TokenFusionMiT(
            arch=arch,
            num_modalities=m,
            in_channels=channels // m,
            fusion='geminifusion',
            fusion_heads=8)
    else:
        backbone = TokenFusionMiT(
            arch=arch, num_modalities=m, in_channels=channels // m)
    backbone.init_weights()
    if kind == 'reference':
        backbone = ReferenceTokenFusionMiT.from_tokenfusion(backbone)
    return backbone


def build_model(name: str,
                arch: str,
                head_channels: int = 256,
                num_classes: int = 40,
                backbone: bool = False) -> nn.Module:
    """The benchmarked network (``backbone=True``: the backbone only)."""
    net = build_backbone(name, arch)
    if backbone:
        return net
    _, m, _ = parse_model_name(name)
    dims = [MIT_ARCHS[arch]['embed_dims'] * h for h in (1, 2, 5, 8)]
    head = SegFormerMLPHead(
        in_channels=dims,
        channels=head_channels,
        num_classes=num_classes,
        dropout_ratio=0.1,
        norm_cfg=dict(type='BN', requires_grad=True),
        align_corners=False)
    return BenchSegmentor(net, head, m)


# ---------------------------------------------------------------- counting
def _sdpa_flops(query, key, value, *args, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count
    return sdpa_flop_count(query.shape, key.shape, value.shape)


class MacCounter(TorchDispatchMode):
    """Counts the FLOPs of the dispatched aten ops with the formulas of
    ``torch.utils.flop_counter`` (mm, addmm, bmm, baddbmm, convolution with
    groups, SDPA on CUDA) plus the CPU kernels of SDPA that torch does not
    count. A plain dispatch mode: no module tracking, no dynamo import."""

    def __init__(self) -> None:
        super().__init__()
        from torch.utils.flop_counter import flop_registry
        self.registry = dict(flop_registry)
        aten = torch.ops.aten
        for op in ('_scaled_dot_product_flash_attention_for_cpu',
                   '_scaled_dot_product_fused_attention_overrideable'):
            if hasattr(aten, op):
                self.registry[getattr(aten, op)] = _sdpa_flops
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = self.registry.get(func._overloadpacket)
        if formula is not None:
            self.flops += formula(*args, **kwargs, out_val=out)
        return out


def count_macs(model: nn.Module, inputs: torch.Tensor) -> int:
    """Multiply-accumulates of ``model(inputs)`` (see module docstring)."""
    return count_macs_split(model, inputs)[0]


# fusion modules: GeminiFusion (``...attn.gemini``), TokenFusion's score
# predictors (``score_predictor``, ours and the reference formulation's) and
# the DeLiVER hub's score nets of GeminiFusion with M > 2
# (``extra_score_predictor``)
FUSION_NAME = re.compile(
    r'(^|\.)(gemini|score_predictor|extra_score_predictor)(\.|$)')


def is_fusion_name(name: str) -> bool:
    """Whether a module / parameter name belongs to a fusion module."""
    return FUSION_NAME.search(name) is not None


def count_macs_split(model: nn.Module, inputs: torch.Tensor) -> tuple:
    """MACs of ``model(inputs)``, total and inside fusion modules.

    The fusion share is what the counter sees between entering and leaving
    the outermost called module whose name :func:`is_fusion_name` (forward
    hooks with a nesting depth, so nested or uncalled containers are
    counted once or not at all). The token exchange itself (``where``) and
    GeminiFusion's element-wise two-key dot products are no matmuls and are
    not counted (see ``tests/test_geminifusion.py``).

    Returns:
        tuple[int, int]: ``(total, fusion)`` multiply-accumulates.
    """
    counter = MacCounter()
    state = dict(depth=0, start=0, fusion=0)

    def enter(module, args):
        if state['depth'] == 0:
            state['start'] = counter.flops
        state['depth'] += 1

    def leave(module, args, output):
        state['depth'] -= 1
        if state['depth'] == 0:
            state['fusion'] += counter.flops - state['start']

    handles = []
    for name, module in model.named_modules():
        if is_fusion_name(name):
            handles += [
                module.register_forward_pre_hook(enter),
                module.register_forward_hook(leave)
            ]
    try:
        with torch.no_grad(), counter:
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return counter.flops // 2, state['fusion'] // 2


def count_params(model: nn.Module, fusion_only: bool = False) -> int:
    """Parameters of ``model`` (``fusion_only``: of its fusion modules)."""
    return sum(p.numel() for name, p in model.named_parameters()
               if not fusion_only or is_fusion_name(name))


def check_flops(num_modalities: int = 2) -> dict:
    """MACs of TokenFusionMiT and its reference formulation on a tiny case
    (they compute the same function, so the counts must be equal)."""
    torch.manual_seed(0)
    ours = TokenFusionMiT(
        num_modalities=num_modalities, embed_dims=8,
        num_layers=(2, 1, 1, 1)).eval()
    ref = ReferenceTokenFusionMiT.from_tokenfusion(ours).eval()
    x = torch.randn(1, 3 * num_modalities, 64, 64)
    return dict(ours=count_macs(ours, x), reference=count_macs(ref, x))


# ---------------------------------------------------------------- memory
def _proc_status(key: str):
    try:
        with open('/proc/self/status') as f:
            match = re.search(rf'^{key}:\s+(\d+) kB', f.read(), re.M)
        return int(match.group(1)) * 1024 if match else None
    except OSError:
        return None


class PeakMemory:
    """Peak memory growth above a baseline (see module docstring)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.method = None

    def start(self) -> None:
        if self.device.startswith('cuda'):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            self.method = 'cuda.max_memory_allocated'
            return
        try:
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')
            self.base = _proc_status('VmRSS')
            self.method = 'VmHWM'
        except OSError:
            self.base = None
        if self.base is None:
            self.base = resource.getrusage(
                resource.RUSAGE_SELF).ru_maxrss * 1024
            self.method = 'ru_maxrss'

    def peak(self) -> int:
        if self.method == 'cuda.max_memory_allocated':
            return torch.cuda.max_memory_allocated() - self.base
        if self.method == 'VmHWM':
            return _proc_status('VmHWM') - self.base
        return resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss * 1024 - self.base


# ---------------------------------------------------------------- worker
def _sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def time_fn(fn, warmup: int, iters: int, device: str) -> dict:
    """Wall-clock and process CPU seconds of ``iters`` calls of ``fn``
    after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(iters):
        _sync(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        _sync(device)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return dict(wall=wall, cpu=cpu)


def profile_fn(fn, device: str, rows: int = 25) -> str:
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU]
    if device.startswith('cuda'):
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        fn()
        _sync(device)
    key = 'self_cuda_time_total' if device.startswith('cuda') \
        else 'self_cpu_time_total'
    return prof.key_averages().table(sort_by=key, row_limit=rows)


def make_step(model: nn.Module, spec: dict, batch: int):
    """A closure running one inference forward or one training step."""
    device = spec['device']
    h, w = spec['size']
    _, _, channels = parse_model_name(spec['model'])
    x = torch.randn(batch, channels, h, w, device=device)
    if spec['mode'] == 'infer':
        model.eval()

        def step():
            with torch.no_grad():
                model(x)

        return step
    model.train()
    labels = torch.randint(
        0, spec['num_classes'], (batch, h, w), device=device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=6e-5, weight_decay=0.01)

    def step():
        optimizer.zero_grad(set_to_none=True)
        if spec['backbone_only']:
            out = model(x)
            feats, scores = out if isinstance(out, tuple) else (out, [])
            loss = sum(f.float().mean() for f in _flatten(feats)) + sum(
                s.sum() for s in _flatten(scores))
        else:
            loss = model.loss(x, labels)
        loss.backward()
        optimizer.step()

    return step


def _build(spec: dict) -> nn.Module:
    return build_model(spec['model'], spec['arch'], spec['head_channels'],
                       spec['num_classes'],
                       spec['backbone_only']).to(spec['device'])


def run_worker(spec: dict) -> dict:
    """One (model, size, mode) measurement; runs in a fresh process."""
    warnings.filterwarnings('ignore')
    torch.set_num_threads(spec['threads'])
    torch.manual_seed(0)
    device = spec['device']
    h, w = spec['size']
    model = _build(spec)
    _, _, channels = parse_model_name(spec['model'])
    x = torch.randn(1, channels, h, w, device=device)
    result = dict(
        spec,
        params=count_params(model),
        fusion_params=count_params(model, fusion_only=True))
    memory = PeakMemory(device)
    step = make_step(model, spec, spec['batch'])
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
        result['macs'], result['fusion_macs'] = count_macs_split(model, x[:1])
        if spec['throughput_batch']:
            step_batch = make_step(model, spec, spec['throughput_batch'])
            times = time_fn(step_batch, spec['warmup'], spec['iters'], device)
            result['throughput_times'] = times
            result['throughput'] = spec['throughput_batch'] / \
                statistics.median(times[spec['timer']])
    if spec['profile']:
        result['profile'] = profile_fn(
            make_step(model, spec, spec['batch']), device)
    return result


def run_paired_worker(spec: dict) -> dict:
    """Time two models alternately in one process (A B A B ...), so that
    both see the same interference from other processes on the machine.
    ``spec['model']`` is A, ``spec['baseline']`` B; returns the medians and
    the median of the per-round ratios A / B."""
    warnings.filterwarnings('ignore')
    torch.set_num_threads(spec['threads'])
    torch.manual_seed(0)
    steps = [
        make_step(
            _build(dict(spec, model=name)), dict(spec, model=name),
            spec['batch']) for name in (spec['model'], spec['baseline'])
    ]
    for _ in range(spec['warmup']):
        for step in steps:
            step()
    times = [{'wall': [], 'cpu': []} for _ in steps]
    for _ in range(spec['iters']):
        for step, record in zip(steps, times):
            one = time_fn(step, 0, 1, spec['device'])
            for key in record:
                record[key] += one[key]
    timer = spec['timer']
    ratios = [a / b for a, b in zip(times[0][timer], times[1][timer])]
    return dict(
        spec,
        times=times,
        medians=[statistics.median(t[timer]) for t in times],
        ratio=statistics.median(ratios))


def _flatten(items):
    for item in items:
        if isinstance(item, (list, tuple)):
            yield from _flatten(item)
        else:
            yield item


def _run_subprocess(spec: dict, env: Optional[dict] = None) -> dict:
    cmd = [sys.executable, osp.abspath(__file__), '--worker', json.dumps(spec)]
    proc = subprocess.run(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, **(env or {})))
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    raise RuntimeError(f'worker failed for {spec}:\n{proc.stderr[-4000:]}')


# glibc malloc that keeps freed memory for reuse (like PyTorch's CUDA caching
# allocator) instead of returning every block above 32 MiB to the kernel and
# faulting it in again on the next step
CACHING_MALLOC_ENV = dict(
    MALLOC_MMAP_THRESHOLD_=str(2**32),
    MALLOC_TRIM_THRESHOLD_=str(2**36),
    MALLOC_TOP_PAD_=str(2**30))


def measure(spec: dict, in_process: bool) -> dict:
    """Timing (and FLOPs, throughput) and peak memory of one (model, size,
    mode). On CPU the memory is measured in its own fresh process whose
    glibc malloc serves every block >= 64 KiB by mmap
    (``MALLOC_MMAP_THRESHOLD_``), so that freed tensors leave the resident
    set at once and its peak follows the live tensors; one step (the
    first, which also creates the AdamW state) is measured there."""
    if in_process:
        return run_worker(spec)
    result = _run_subprocess(
        spec, CACHING_MALLOC_ENV if spec.get('caching_malloc') else None)
    if not spec['device'].startswith('cuda'):
        memory = _run_subprocess(
            dict(
                spec,
                measure='memory',
                warmup=0,
                iters=1,
                throughput_batch=0,
                profile=False),
            env=dict(MALLOC_MMAP_THRESHOLD_='65536'))
        result['peak_memory_timing_process'] = result['peak_memory']
        result['peak_memory'] = memory['peak_memory']
        result['memory_method'] = memory['memory_method'] + \
            ' (MALLOC_MMAP_THRESHOLD_=65536)'
    return result


# ---------------------------------------------------------------- report
def _ratio(value, base):
    return f'{value / base:.2f}' if value and base else '-'


def _fmt(value, scale, spec):
    return '-' if value is None else format(value * scale, spec)


def _mib(num_bytes):
    return f'{num_bytes / 2**20:.0f}'


def format_tables(results: dict, args) -> str:
    """One markdown table per size; every ``x rgb`` is the ratio to the
    ``rgb`` row of the same run (``-`` without it)."""
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
            r = rows[name]
            infer, train = r.get('infer', {}), r.get('train', {})
            params = infer.get('params', train.get('params'))
            fusion_params = infer.get('fusion_params',
                                      train.get('fusion_params'))
            cells = [
                name,
                _fmt(params, 1e-6, '.2f'),
                _ratio(params, bparams),
                _fmt(fusion_params, 1e-6, '.2f'),
                _fmt(infer.get('macs'), 1e-9, '.1f'),
                _ratio(infer.get('macs'), binfer.get('macs')),
                _fmt(infer.get('fusion_macs'), 1e-9, '.1f'),
                _fmt(infer.get('median'), 1e3, '.0f'),
                _ratio(infer.get('median'), binfer.get('median')),
                _fmt(infer.get('throughput'), 1, '.2f'),
                _fmt(train.get('median'), 1, '.2f'),
                _ratio(train.get('median'), btrain.get('median')),
                _fmt(infer.get('peak_memory'), 2**-20, '.0f'),
                _ratio(infer.get('peak_memory'), binfer.get('peak_memory')),
                _fmt(train.get('peak_memory'), 2**-20, '.0f'),
                _ratio(train.get('peak_memory'), btrain.get('peak_memory'))
            ]
            lines.append('| ' + ' | '.join(cells) + ' |')
        lines.append('')
    lines += format_targets(results, args)
    return '\n'.join(lines)


def format_targets(results: dict, args) -> list:
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
    if len(lines) == 4:
        return []
    lines.append('')
    return lines


def _load() -> str:
    try:
        return '/'.join(f'{v:.1f}' for v in os.getloadavg())
    except OSError:
        return 'n/a'


PAIRS = (('tokenfusion-m2', 'rgb', 'infer'), ('reference-m2', 'tokenfusion-m2',
                                              'train'))


def run_paired(args, base_spec: dict) -> list:
    """The two target ratios, each timed A B A B ... in one process."""
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
            results.append(
                _run_subprocess(
                    spec, CACHING_MALLOC_ENV if args.caching_malloc else None))
        r = results[-1]
        print(
            f'paired {model} / {baseline} {mode}: {r["ratio"]:.2f}',
            flush=True)
    return results


def format_paired(results: list, args) -> str:
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


# ---------------------------------------------------------------- scaling
def fit_power_law(xs, ys):
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


def num_tokens(size) -> int:
    """Stage-1 tokens of an H x W input (patch embed 7x7, stride 4, pad
    3)."""
    h, w = size
    return -(-h // 4) * -(-w // 4)


def run_scaling(args, base_spec: dict) -> dict:
    """Batch-1 inference time and MACs of every model at every scaling
    size (one fresh process each unless ``--in-process``; no memory
    measurement), and the fitted exponents."""
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
                r = _run_subprocess(
                    spec, CACHING_MALLOC_ENV if args.caching_malloc else None)
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


def format_scaling(results: dict, args) -> str:
    sizes = ', '.join(f'{h}x{w}' for h, w in args.scaling_sizes)
    lines = [
        f'### Token scaling, {args.arch.upper()}, {args.device}, '
        f'{args.threads} threads, {args.timer} time, sizes {sizes}', '',
        '| model | params (M) | k (time ∝ tokens^k) | '
        'k (MACs ∝ tokens^k) |', '|---|---|---|---|'
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['rows'][0]['params'] / 1e6:.2f} | "
                     f"{_fmt(r['k_time'], 1, '.3f')} | "
                     f"{_fmt(r['k_macs'], 1, '.3f')} |")
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


def parse_size(text: str):
    h, w = text.lower().split('x')
    return int(h), int(w)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Benchmark TokenFusion vs RGB-only / concat MiT and the '
        'reference formulation')
    parser.add_argument('--arch', default='b2', choices=sorted(MIT_ARCHS))
    parser.add_argument(
        '--models',
        nargs='+',
        default=list(DEFAULT_MODELS),
        help=f'from {ALL_MODELS} (any tokenfusion-mN / reference-mN)')
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
        choices=['wall', 'cpu'],
        help='wall clock, or process CPU time (CPU, meaningful with '
        '--threads 1 only: robust to other processes on the machine)')
    parser.add_argument('--head-channels', type=int, default=256)
    parser.add_argument('--num-classes', type=int, default=40)
    parser.add_argument(
        '--backbone-only',
        action='store_true',
        help='benchmark the backbones without decode head')
    parser.add_argument(
        '--modes',
        nargs='+',
        default=['infer', 'train'],
        choices=['infer', 'train'])
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
    parser.add_argument('--out', help='write the markdown tables here')
    parser.add_argument('--json-out', help='write the raw results here')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        result = run_paired_worker(spec) if 'baseline' in spec \
            else run_worker(spec)
        print(RESULT_TAG + json.dumps(result), flush=True)
        return
    for name in args.models:
        parse_model_name(name)
    if args.check_flops:
        for m in (2, 3):
            counts = check_flops(m)
            status = 'equal' if counts['ours'] == counts['reference'] \
                else 'DIFFERENT'
            print(f'tiny M={m} MACs: {counts} -> {status}', flush=True)
    if args.timer == 'cpu' and (args.threads > 1 or args.device != 'cpu'):
        print('warning: --timer cpu is meaningful on CPU with --threads 1')
    load_start = _load()
    results = {}
    start = time.time()
    base_spec = dict(
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
    if args.scaling:
        scaling = run_scaling(args, base_spec)
        report = format_scaling(scaling, args)
        header = (f'torch {torch.__version__}, {args.device}, '
                  f'{args.threads} threads, {args.timer} time, warmup '
                  f'{args.warmup}, iters {args.iters} (median), total '
                  f'{time.time() - start:.0f}s, load average {load_start} '
                  f'-> {_load()}\n')
        _write_report(header, report, dict(scaling=scaling), args)
        return
    for size in [] if args.paired_only else args.sizes:
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
                    f"peak {_mib(r['peak_memory'])} MiB{extra}",
                    flush=True)
                if r.get('profile'):
                    print(r['profile'], flush=True)
    report = format_tables(results, args) if results else ''
    if args.paired:
        paired = run_paired(args, base_spec)
        results['paired'] = paired
        report += format_paired(paired, args)
    malloc = 'caching malloc' if args.caching_malloc else 'default malloc'
    header = (f'torch {torch.__version__}, {args.device}, '
              f'{args.threads} threads, {args.timer} time, {malloc}, warmup '
              f'{args.warmup}, iters {args.iters} (median), total '
              f'{time.time() - start:.0f}s, load average {load_start} -> '
              f'{_load()}\n')
    _write_report(header, report, results, args)


def _write_report(header: str, report: str, results: dict, args) -> None:
    print('\n' + header + '\n' + report)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            f.write(header + '\n' + report + '\n')
    if args.json_out:
        with open(args.json_out, 'w') as f:
            json.dump(results, f, indent=1)


if __name__ == '__main__':
    main()
