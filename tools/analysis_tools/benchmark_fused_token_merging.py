"""Cost of token merging inside the fused MiT backbones: encoder GMACs and
latency of TokenFusion and GeminiFusion with ``token_merge`` against the
unmerged backbone, measured in one run so that the ratios compare like with
like.

    python tools/analysis_tools/benchmark_fused_token_merging.py --arch b3 \\
        --size 480 640 --ratios 0.25 0.5 0.75 --stages 3 2,3,4 \\
        --threads 2 [--merge-mlp both] [--device cuda] [--out table.md]

Settings: for each ``--stages`` set (1-based stage numbers) and ratio, every
block of those stages merges that fraction of its tokens (2 x 2 strided
destinations, search radius 1 cell); ``--merge-mlp`` also (``on``) or both
ways (``both``) merges the Mix-FFN's linear layers. GMACs: one batch-1
forward of the backbone (``benchmarking.macs``: matmuls, convolutions and
attention, including the matching's similarity products; "fusion": those
inside the fusion layers). Latency: batch-1 forward (eval mode, no
gradient), median of ``--iters`` runs after ``--warmup``, every setting of a
model timed in turns (A B C A B C ...) so that drifts of the machine's load
hit all alike. Weights are random: the work does not depend on them (the
merged token counts are fixed by the ratio).
"""
import argparse
import os.path as osp
import platform
import statistics
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402

import projects.multimodal_seg  # noqa: E402,F401
from tools.analysis_tools.benchmarking.macs import count_macs_split  # noqa
from tools.analysis_tools.benchmarking.models import \
    backbone_config  # noqa: E402
from tools.analysis_tools.benchmarking.timing import \
    time_alternately  # noqa: E402

MODELS_MEASURED = {
    'tokenfusion': 'tokenfusion-m2',
    'geminifusion': 'geminifusion'
}


def token_merge_config(stages,
                       ratio: float,
                       merge_mlp: bool,
                       num_stages: int = 4):
    """``FusedMiT(token_merge=...)`` merging ``ratio`` in the 1-based
    ``stages``."""
    return [
        dict(ratio=ratio, merge_mlp=merge_mlp) if s + 1 in stages else None
        for s in range(num_stages)
    ]


def settings_of(args):
    """(label, token_merge) of every setting, the unmerged one first."""
    mlp_modes = {'off': [False], 'on': [True], 'both': [False, True]}
    settings = [('unmerged', None)]
    for stages in args.stages:
        for ratio in args.ratios:
            for mlp in mlp_modes[args.merge_mlp]:
                label = (f'stages {",".join(map(str, stages))}, ratio '
                         f'{ratio:g}' + (', + MLP' if mlp else ''))
                settings.append((label, token_merge_config(stages, ratio,
                                                           mlp)))
    return settings


def build_backbone(name: str, arch: str, token_merge, device: str):
    cfg = backbone_config(MODELS_MEASURED[name], arch)
    cfg['token_merge'] = token_merge
    with DefaultScope.overwrite_default_scope('mmseg'):
        torch.manual_seed(0)
        backbone = MODELS.build(cfg)
    backbone.init_weights()
    return backbone.to(device).eval()


def measure(name: str, args) -> list:
    """Rows (label, GMACs, fusion GMACs, ms) of one model's settings."""
    inputs = torch.randn(1, 6, *args.size, device=args.device)
    settings = settings_of(args)
    backbones = [
        build_backbone(name, args.arch, merge, args.device)
        for _, merge in settings
    ]
    macs = []
    with torch.no_grad():
        for backbone in backbones:
            macs.append(count_macs_split(backbone, inputs))

    def step(backbone):
        with torch.no_grad():
            backbone(inputs)

    times = time_alternately([lambda b=b: step(b) for b in backbones],
                             args.warmup, args.iters, args.device)
    return [(label, total / 1e9, fusion / 1e9,
             1e3 * statistics.median(t['wall']))
            for (label, _), (total, fusion), t in zip(settings, macs, times)]


def format_table(name: str, rows, args) -> str:
    base_macs, base_ms = rows[0][1], rows[0][3]
    lines = [
        f'{name}, MiT-{args.arch.upper()} {args.size[0]}x{args.size[1]}, '
        f'{machine(args)}',
        '| token merging | encoder GMACs | of which fusion | GMACs vs '
        'unmerged | latency (ms) | vs unmerged |', '|---|---|---|---|---|---|'
    ]
    for label, macs, fusion, ms in rows:
        lines.append(f'| {label} | {macs:.4g} | {fusion:.4g} | '
                     f'{100 * (macs / base_macs - 1):+.1f} % | {ms:.0f} | '
                     f'{ms / base_ms:.2f}x |')
    return '\n'.join(lines)


def machine(args) -> str:
    if args.device.startswith('cuda'):
        return torch.cuda.get_device_name(0)
    return (f'{platform.processor() or platform.machine()}, '
            f'{torch.get_num_threads()} threads, batch 1')


def parse_stages(text: str):
    stages = tuple(int(s) for s in text.split(','))
    if not all(1 <= s <= 4 for s in stages):
        raise argparse.ArgumentTypeError(
            f'stages are 1-based MiT stages 1..4, got {text!r}')
    return stages


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', default='b3')
    parser.add_argument(
        '--size', type=int, nargs=2, default=[480, 640], metavar=('H', 'W'))
    parser.add_argument(
        '--models',
        nargs='+',
        default=list(MODELS_MEASURED),
        choices=list(MODELS_MEASURED))
    parser.add_argument(
        '--ratios', type=float, nargs='+', default=[0.25, 0.5, 0.75])
    parser.add_argument(
        '--stages', type=parse_stages, nargs='+', default=[(3, ), (2, 3, 4)])
    parser.add_argument(
        '--merge-mlp', choices=['off', 'on', 'both'], default='both')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int)
    parser.add_argument('--out', help='also write the tables here')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    tables = []
    for name in args.models:
        tables.append(format_table(name, measure(name, args), args))
        print(tables[-1] + '\n', flush=True)
    if args.out:
        with open(args.out, 'w') as f:
            f.write('\n\n'.join(tables) + '\n')
    return tables


if __name__ == '__main__':
    main()
