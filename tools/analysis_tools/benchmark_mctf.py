"""Throughput and GFLOPs of DeiT with and without token merging: DeiT,
MCTF (r = 16 in blocks 1-11), MCTF-Fast (r = 0.35 in blocks 3, 6, 9) and
ToMe (all blocks, its r chosen to match MCTF's GFLOPs), measured in one
run so that the ratios compare like with like.

    python tools/analysis_tools/benchmark_mctf.py --arch deit-small \\
        --batch-size 32 --threads 1 2 [--device cuda]

Images/s are the median of ``--repeats`` timed passes of ``--iters``
forward passes each (eval mode, no gradient), after ``--warmup`` passes;
GFLOPs are per 224 x 224 image, counted with the merged token counts
(``projects/mctf/complexity.py``). Weights are random: the work does not
depend on them (the token counts are fixed by r). On a CPU the threads are
pinned with ``torch.set_num_threads``; state the machine with the figures.
"""
import argparse
import os.path as osp
import statistics
import sys
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmpretrain.registry import MODELS  # noqa: E402

import projects.mctf  # noqa: E402,F401
from projects.mctf.complexity import count_gflops  # noqa: E402

WIDTHS = {'deit-tiny': 192, 'deit-small': 384, 'deit-base': 768}
TOME = dict(
    placement='after_attention',
    metric='keys',
    tau_info=0.,
    tau_size=0.,
    bidirectional=False,
    pooling='size')
MODELS_TO_RUN = {
    'DeiT': dict(r=0),
    'MCTF r=16': dict(r=16),
    'MCTF-Fast': dict(r=0.35, merge_layers=[3, 6, 9]),
}


def build(arch: str, img_size: int = 224, **backbone):
    """An ImageClassifier over ``MCTFVisionTransformer`` in eval mode
    (built in mmpretrain's scope whatever the current default)."""
    cfg = dict(
        type='ImageClassifier',
        backbone=dict(
            type='MCTFVisionTransformer',
            arch=arch,
            img_size=img_size,
            **backbone),
        head=dict(
            type='VisionTransformerClsHead',
            num_classes=1000,
            in_channels=WIDTHS[arch]))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg)
    model.eval()
    return model


def tome_matching(arch: str, target: float, img_size: int = 224):
    """ToMe's settings (all blocks) with the r whose GFLOPs come closest
    to ``target`` (GFLOPs fall as r grows: bisection over the r the
    safeguards allow); returns (backbone settings, GFLOPs)."""

    def settings(r):
        return dict(TOME, r=r, merge_layers=list(range(12)))

    def flops(r):
        return count_gflops(build(arch, img_size, **settings(r)), img_size)

    probe = build(arch, img_size, **settings(0))
    low, high = 0, 1
    while True:  # the largest r every block can take
        try:
            probe.backbone.token_counts(r=high + 1)
        except ValueError:
            break
        high += 1
    # invariant: flops(low) >= target > flops(high), or high is the limit
    while high - low > 1:
        middle = (low + high) // 2
        if flops(middle) >= target:
            low = middle
        else:
            high = middle
    best = min((low, high), key=lambda r: abs(flops(r) - target))
    return settings(best), flops(best)


@torch.no_grad()
def images_per_second(model, batch: torch.Tensor, warmup: int, iters: int,
                      repeats: int) -> float:

    def sync():
        if batch.is_cuda:
            torch.cuda.synchronize()

    for _ in range(warmup):
        model(batch, mode='tensor')
    sync()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iters):
            model(batch, mode='tensor')
        sync()
        rates.append(iters * batch.shape[0] / (time.perf_counter() - start))
    return statistics.median(rates)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', default='deit-small', choices=WIDTHS)
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument('--repeats', type=int, default=3)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.manual_seed(0)
    rows = []
    for name, settings in MODELS_TO_RUN.items():
        model = build(args.arch, args.img_size, **settings)
        rows.append((name, model, count_gflops(model, args.img_size)))
    tome, tome_flops = tome_matching(args.arch, rows[1][2], args.img_size)
    rows.append((f'ToMe r={tome["r"]}', build(args.arch, args.img_size,
                                              **tome), tome_flops))
    batch = torch.randn(args.batch_size, 3, args.img_size, args.img_size)
    batch = batch.to(args.device)
    threads = args.threads if args.device == 'cpu' else [None]
    results = {}
    for name, model, _ in rows:
        model.to(args.device)
        for t in threads:
            if t is not None:
                torch.set_num_threads(t)
            results[name, t] = images_per_second(model, batch, args.warmup,
                                                 args.iters, args.repeats)
    header = f'| Model ({args.arch}) | GFLOPs | tokens out |' + ''.join(
        f' images/s ({t or args.device}) | ratio |' for t in threads)
    lines = [header, '|' + '---|' * (3 + 2 * len(threads))]
    for name, model, flops in rows:
        tokens = model.backbone.token_counts()[-1]
        cells = ''.join(f' {results[name, t]:.1f} | '
                        f'{results[name, t] / results["DeiT", t]:.2f}x |'
                        for t in threads)
        lines.append(f'| {name} | {flops:.3f} | {tokens} |{cells}')
    table = '\n'.join(lines)
    print(f'batch {args.batch_size}, {args.img_size}x{args.img_size}, '
          f'device {args.device}, torch {torch.__version__}')
    print(table)
    return table


if __name__ == '__main__':
    main()
