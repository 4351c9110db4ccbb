"""Accuracy against GFLOPs of merging ViTs (MCTF, ToMe) at several r.

    python tools/analysis_tools/token_merging_tradeoff.py \\
        NAME=CONFIG:CHECKPOINT [NAME=CONFIG:CHECKPOINT ...] \\
        --r 0 2 4 6 8 --out-dir DIR [--cfg-options K=V ...]

Each CONFIG is an mmpretrain config whose backbone merges tokens
(``MCTFVisionTransformer``). Its runner is built once, as ``tools/test.py``
builds it, with CHECKPOINT as ``load_from``; for every r the backbone's
``r_eval`` is set, the test loop runs (the config's dataset, pipeline and
evaluator) and the GFLOPs of one image at that r are counted with
:func:`projects.mctf.complexity.count_gflops`. An r that the safeguards
reject at some merging layer is an error naming the model and the layer.

Writes ``DIR/tradeoff.md`` (the table), ``DIR/tradeoff.json`` and
``DIR/tradeoff.png`` (top-1 against GFLOPs, one line per model); the test
logs are under ``DIR/<model>/``.
"""
import argparse
import json
import os
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from mmengine.config import DictAction  # noqa: E402

# importing the compat module makes checkpoints load under torch >= 2.6
import projects.common.mmengine_compat  # noqa: E402,F401
from projects.common import runner_utils  # noqa: E402
from tools.analysis_tools.model_panels import parse_model  # noqa: E402
from tools.run_demo import model_dir  # noqa: E402

TOP1 = 'accuracy/top1'


def parse_r(text: str):
    """'4' -> 4, '0.35' -> 0.35."""
    value = float(text)
    return int(value) if value.is_integer() and '.' not in text else value


def merging_backbone(model, name: str, config: str):
    """The model's backbone, which must merge tokens (an error names the
    model and its config otherwise)."""
    backbone = model.backbone
    if not hasattr(backbone, 'token_counts'):
        raise TypeError(f'{name}: the backbone of {config} is a '
                        f'{type(backbone).__name__}, not a token-merging '
                        'MCTFVisionTransformer')
    return backbone


def image_size(backbone) -> int:
    """The square input side the backbone was configured for."""
    h, w = backbone.patch_resolution
    stride = backbone.patch_embed.projection.stride
    if h * stride[0] != w * stride[1]:
        raise ValueError(f'GFLOPs are counted on square images; the '
                         f'backbone expects {h * stride[0]}x{w * stride[1]}')
    return h * stride[0]


def evaluate(name, config, checkpoint, rs, work_dir, cfg_options=None):
    """[{'r', 'tokens', 'gflops', 'top1'}, ...] of one model."""
    from projects.mctf.complexity import count_gflops
    cfg = runner_utils.load_config(config, 'none', work_dir, cfg_options)
    cfg.load_from = checkpoint
    cfg.resume = False
    runner = runner_utils.build_runner(cfg)
    model = runner.model
    backbone = merging_backbone(model, name, config)
    for r in rs:  # every r checked before the first test run
        try:
            backbone.token_counts(r=r)
        except ValueError as exc:
            raise ValueError(f'{name} ({config}) at r={r}: {exc}') from None
    size = image_size(backbone)
    runner.call_hook('before_run')
    runner.load_or_resume()
    rows = []
    for r in rs:
        backbone.r_eval = r
        metrics = runner.test_loop.run()
        if TOP1 not in metrics:
            raise KeyError(f'{name}: the evaluator of {config} reports '
                           f'{sorted(metrics)}, not {TOP1!r}')
        rows.append(
            dict(
                r=r,
                tokens=backbone.token_counts(r=r)[-1],
                gflops=count_gflops(model, size),
                top1=float(metrics[TOP1])))
        print(f'[tradeoff] {name} r={r}: {rows[-1]}', flush=True)
    runner.call_hook('after_run')
    return rows


def format_table(results) -> str:
    """results: {model name: rows of :func:`evaluate`}."""
    lines = [
        '| Model | r | Tokens after the last layer | GFLOPs | Top-1 (%) |',
        '|---|---:|---:|---:|---:|'
    ]
    for name, rows in results.items():
        for row in rows:
            lines.append(f'| {name} | {row["r"]} | {row["tokens"]} | '
                         f'{row["gflops"]:.4f} | {row["top1"]:.2f} |')
    return '\n'.join(lines)


def plot(results, path: str, title: str = '') -> str:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, rows in results.items():
        ax.plot([row['gflops'] for row in rows], [row['top1'] for row in rows],
                marker='o',
                label=name)
        for row in rows:
            ax.annotate(
                f'r={row["r"]}', (row['gflops'], row['top1']),
                textcoords='offset points',
                xytext=(3, 3),
                fontsize=7)
    # the axis from a round 10 % below the worst result to 100 %: a zoom
    # into a few tenths would show single test images as a slope
    lowest = min(row['top1'] for rows in results.values() for row in rows)
    ax.set_ylim(max(0., 10 * ((lowest - 2) // 10)), 100.5)
    ax.set_xlabel('GFLOPs per image')
    ax.set_ylabel('top-1 accuracy (%)')
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('models', nargs='+', type=parse_model)
    parser.add_argument(
        '--r',
        nargs='+',
        type=parse_r,
        required=True,
        help='tokens removed per merging layer (a count, or a fraction '
        'below 1); 0 merges nothing')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--title', default='', help='title of the plot')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    names = [name for name, _, _ in args.models]
    if len(set(names)) != len(names):
        parser.error(f'model names must differ, got {names}')
    os.makedirs(args.out_dir, exist_ok=True)
    results = {
        name:
        evaluate(name, config, checkpoint, args.r,
                 model_dir(args.out_dir, name), args.cfg_options)
        for name, config, checkpoint in args.models
    }
    table = format_table(results)
    with open(osp.join(args.out_dir, 'tradeoff.md'), 'w') as f:
        f.write(table + '\n')
    with open(osp.join(args.out_dir, 'tradeoff.json'), 'w') as f:
        json.dump(results, f, indent=1)
    plot(results, osp.join(args.out_dir, 'tradeoff.png'), args.title)
    print(table)
    return results


if __name__ == '__main__':
    main()
