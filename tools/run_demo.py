"""``make demo``: train and evaluate models on the embedded synthetic RGB-D
set with the standard ``tools/train.py`` / ``tools/test.py`` and print one
table.

Each model is trained by ``tools/train.py CONFIG``, its final checkpoint is
evaluated by ``tools/test.py CONFIG CKPT --show-dir vis`` (panels RGB |
depth | prediction | ground truth under the work dir), and the metrics are
collected into the table. Logs are in ``work_dirs/demo/<model>/``.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SEGFORMER = 'configs/segformer'
TOKENFUSION = 'configs/tokenfusion'
TOKENFUSION_ROW = 'TokenFusion RGB-D'  # also drawn as the paper's Figure 4
# (row name, config) in table order
DEMO_MODELS = [
    ('RGB only',
     f'{SEGFORMER}/segformer_mit-tiny_1xb8-1k_synthetic-rgb-64x64.py'),
    ('Depth only',
     f'{SEGFORMER}/segformer_mit-tiny_1xb8-1k_synthetic-depth-64x64.py'),
    ('Early concat RGB-D',
     f'{SEGFORMER}/segformer_mit-tiny-concat_1xb8-1k_synthetic-rgbd-64x64.py'),
    (TOKENFUSION_ROW,
     f'{TOKENFUSION}/tokenfusion_mit-tiny_1xb8-1k_synthetic-rgbd-64x64.py'),
]


def model_dir(work_root, name):
    """work_dirs/demo/<row name as a folder name>"""
    return osp.join(work_root, name.lower().replace(' ', '_').replace('-', ''))


def run(cmd, log_file):
    """Run a tool quietly; show the log tail and stop if it fails."""
    with open(log_file, 'w') as log:
        status = subprocess.call(
            cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    if status != 0:
        with open(log_file) as log:
            sys.stdout.write(''.join(log.readlines()[-40:]))
        sys.exit(f'[demo] failed ({status}): {" ".join(cmd)}; see {log_file}')


def train_and_test(name, config, out_root, show=True):
    """Train CONFIG, test its last checkpoint; returns the test metrics
    (``show``: draw the test predictions under ``<work dir>/vis``)."""
    work_dir = model_dir(out_root, name)
    os.makedirs(work_dir, exist_ok=True)
    start = time.time()
    print(f'[demo] {name}: training {config}', flush=True)
    run([sys.executable, 'tools/train.py', config, '--work-dir', work_dir],
        osp.join(work_dir, 'train.log'))
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    print(
        f'[demo] {name}: testing {osp.relpath(checkpoint, REPO_ROOT)}',
        flush=True)
    metrics_file = osp.join(work_dir, 'test_metrics.json')
    show_args = ['--show-dir', osp.join(work_dir, 'vis')] if show else []
    run([
        sys.executable, 'tools/test.py', config, checkpoint, '--work-dir',
        work_dir, '--metrics-json', metrics_file
    ] + show_args, osp.join(work_dir, 'test.log'))
    with open(metrics_file) as f:
        metrics = json.load(f)
    print(f'[demo] {name}: done in {time.time() - start:.0f} s', flush=True)
    return metrics


def draw_token_exchange(work_dir):
    """The paper's Figure 4 for the TokenFusion demo model."""
    config = dict(DEMO_MODELS)[TOKENFUSION_ROW]
    tokenfusion_dir = model_dir(work_dir, TOKENFUSION_ROW)
    with open(osp.join(tokenfusion_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    out_dir = osp.join(tokenfusion_dir, 'figure4')
    run([
        sys.executable, 'tools/analysis_tools/visualize_token_exchange.py',
        config, checkpoint, '--index', '0', '--out-dir', out_dir
    ], osp.join(tokenfusion_dir, 'figure4.log'))
    return out_dir


def format_table(rows):
    header = f'| {"Model":<24} | {"aAcc":>6} | {"mIoU":>6} | {"mAcc":>6} |'
    lines = [
        header,
        '|' + '|'.join('-' * len(c) for c in header.split('|')[1:-1]) + '|'
    ]
    for name, m in rows:
        lines.append(f'| {name:<24} | {m["aAcc"]:6.2f} | {m["mIoU"]:6.2f} | '
                     f'{m["mAcc"]:6.2f} |')
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--work-dir',
        default=osp.join(REPO_ROOT, 'work_dirs', 'demo'),
        help='where the models, logs and drawings go')
    parser.add_argument(
        '--only', nargs='+', help='run only the rows with these names')
    args = parser.parse_args(argv)
    models = [(n, c) for n, c in DEMO_MODELS
              if not args.only or n in args.only]
    start = time.time()
    rows = [(name, train_and_test(name, config, args.work_dir))
            for name, config in models]
    table = format_table(rows)
    if any(name == TOKENFUSION_ROW for name, _ in rows):
        figures = draw_token_exchange(args.work_dir)
        print(f'[demo] tokens exchanged by TokenFusion: {figures}/')
    print(f'\nSynthetic RGB-D test set ({time.time() - start:.0f} s):\n')
    print(table)
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(table + '\n')


if __name__ == '__main__':
    main()
