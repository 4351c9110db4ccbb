"""``make demo``: train and evaluate models on the embedded synthetic RGB-D
set with the standard ``tools/train.py`` / ``tools/test.py`` and print one
table.

The baselines (single-modal and early concat) always run; ``--fusion``
picks the fusion strategies (``make demo FUSION="tokenfusion geminifusion"``,
``FUSION=all`` for every one, ``FUSION=none`` for the baselines only).
``--data rgbdel`` (``make demo DATA=rgbdel``) runs on the synthetic RGB /
depth / event / LiDAR set instead and adds the table of every model without
each modality (``--missing-modality`` adds it for RGB-D). ``--data
translation`` (``make demo TASK=translation``) trains the image-translation
GANs of the synthetic shade + texture -> RGB set instead: one source only,
early concat, no fusion, TokenFusion, GeminiFusion, compared on the MAE /
MSE / PSNR / SSIM of their (ensemble) images.

Each model is trained by ``tools/train.py CONFIG``, its final checkpoint is
evaluated by ``tools/test.py CONFIG CKPT --show-dir vis`` (panels RGB |
depth | prediction | ground truth under the work dir), and the metrics are
collected into the table. Logs are in ``work_dirs/demo/<model>/``.

Reproducibility: the data, the initialisation and the data order are seeded
(``--seed``, default 0: the configs' seed). The CPU kernels are not fixed by a
seed: which vector instructions they use (AVX-512 or AVX2) and how many
threads split a sum change the order of floating-point additions, and a
small model trained for 1000 steps turns such last-bit differences into
different tables. So every tool runs with ``--threads`` (default 2)
OpenMP / MKL threads whatever the machine has and, on x86-64, with the AVX2
kernels of ATen, oneDNN and MKL (``ATEN_CPU_CAPABILITY``,
``ONEDNN_MAX_CPU_ISA``, ``MKL_CBWR``), which every x86-64 CPU of the last
decade has. See the README for what we measured across machines and seeds.
"""
import argparse
import json
import os
import os.path as osp
import platform
import re
import subprocess
import sys
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SEGFORMER = 'configs/segformer'
TOKENFUSION = 'configs/tokenfusion'
GEMINIFUSION = 'configs/geminifusion'
SYNTHETIC = '1xb8-1k_synthetic'  # RGB-D demo budget: 1000 iterations
SYNTHETIC_4 = '1xb8-3k_synthetic'  # four modalities: 3000 iterations
TRANSLATION = 'configs/tokenfusion_translation'
# translation demo: 1000 iterations of batch 4, shade + texture -> RGB
SYNTHETIC_T = 'mit-tiny_1xb4-1k_synthetic'
# per demo data set: the baselines as (row name, config) in table order and
# the fusion strategies as --fusion name -> (row name, config)
DEMO_DATA = {
    'rgbd':
    dict(
        description='Synthetic RGB-D test set',
        baselines=[
            ('RGB only',
             f'{SEGFORMER}/segformer_mit-tiny_{SYNTHETIC}-rgb-64x64.py'),
            ('Depth only',
             f'{SEGFORMER}/segformer_mit-tiny_{SYNTHETIC}-depth-64x64.py'),
            ('Early concat RGB-D', f'{SEGFORMER}/segformer_mit-tiny-concat_'
             f'{SYNTHETIC}-rgbd-64x64.py'),
        ],
        fusion={
            'nofusion':
            ('Shared MiT, no fusion RGB-D', f'{TOKENFUSION}/tokenfusion-'
             f'nofusion_mit-tiny_{SYNTHETIC}-rgbd-64x64.py'),
            'tokenfusion':
            # the 'tokenfusion' row of each set is also drawn as Figure 4
            ('TokenFusion RGB-D',
             f'{TOKENFUSION}/tokenfusion_mit-tiny_{SYNTHETIC}-rgbd-64x64.py'),
            'channel':
            ('Channel exchange RGB-D', f'{TOKENFUSION}/tokenfusion-channel_'
             f'mit-tiny_{SYNTHETIC}-rgbd-64x64.py'),
            'geminifusion':
            ('GeminiFusion RGB-D', f'{GEMINIFUSION}/geminifusion_mit-tiny_'
             f'{SYNTHETIC}-rgbd-64x64.py'),
            'geminifusion-swin':
            ('GeminiFusion Swin RGB-D', f'{GEMINIFUSION}/geminifusion_'
             f'swin-tiny_{SYNTHETIC}-rgbd-64x64.py'),
        }),
    'rgbdel':
    dict(
        description='Synthetic RGB / depth / event / LiDAR test set',
        baselines=[
            ('Early concat RGB-D-E-L', f'{SEGFORMER}/segformer_mit-tiny-'
             f'concat_{SYNTHETIC_4}-rgbdel-64x64.py'),
        ],
        fusion={
            'tokenfusion':
            ('TokenFusion RGB-D-E-L', f'{TOKENFUSION}/'
             f'tokenfusion_mit-tiny_{SYNTHETIC_4}-rgbdel-64x64.py'),
            'geminifusion':
            ('GeminiFusion RGB-D-E-L', f'{GEMINIFUSION}/geminifusion_mit-tiny_'
             f'{SYNTHETIC_4}-rgbdel-64x64.py'),
        }),
    'translation':
    dict(
        description='Synthetic translation test set (shade + texture -> '
        'RGB; metrics of the ensemble, in [-1, 1])',
        task='translation',
        baselines=[
            ('Shade only', f'{TRANSLATION}/translation-single_{SYNTHETIC_T}'
             '-shade2rgb-64x64.py'),
            ('Texture only', f'{TRANSLATION}/translation-single_'
             f'{SYNTHETIC_T}-texture2rgb-64x64.py'),
            ('Early concat', f'{TRANSLATION}/translation-concat_'
             f'{SYNTHETIC_T}-shade-texture2rgb-64x64.py'),
        ],
        fusion={
            'nofusion':
            ('Shared MiT, no fusion', f'{TRANSLATION}/translation-nofusion_'
             f'{SYNTHETIC_T}-shade-texture2rgb-64x64.py'),
            'tokenfusion':
            ('TokenFusion', f'{TRANSLATION}/tokenfusion-translation_'
             f'{SYNTHETIC_T}-shade-texture2rgb-64x64.py'),
            'geminifusion':
            ('GeminiFusion', f'{TRANSLATION}/geminifusion-translation_'
             f'{SYNTHETIC_T}-shade-texture2rgb-64x64.py'),
        }),
}
DEFAULT_FUSION = ('tokenfusion', )
# the README's figures were measured with 2 threads per tool
DEMO_THREADS = 2
# x86-64: the same (AVX2) kernels on every CPU, see the module doc
X86_KERNELS = dict(
    ATEN_CPU_CAPABILITY='avx2', ONEDNN_MAX_CPU_ISA='AVX2', MKL_CBWR='AVX2')


def demo_models(fusion=DEFAULT_FUSION, only=None, data='rgbd'):
    """(row name, config) pairs to run on the demo set ``data``: its
    baselines plus the chosen fusion strategies (``'all'``: every one,
    ``'none'``: none), restricted to the rows named in ``only``."""
    if data not in DEMO_DATA:
        raise ValueError(f'unknown demo data {data!r}: choose from '
                         f'{sorted(DEMO_DATA)}')
    strategies = DEMO_DATA[data]['fusion']
    fusion = list(fusion)
    if 'all' in fusion:
        fusion = list(strategies)
    elif fusion == ['none']:
        fusion = []
    unknown = [f for f in fusion if f not in strategies]
    if unknown:
        raise ValueError(f'unknown fusion strategies {unknown} for the '
                         f'{data} demo: choose from {sorted(strategies)}, '
                         "'all' or 'none'")
    models = DEMO_DATA[data]['baselines'] + [
        strategies[f] for f in strategies if f in fusion
    ]
    if only:
        names = [n for n, _ in models]
        missing = [n for n in only if n not in names]
        if missing:
            raise ValueError(f'--only {missing}: not among the rows {names}')
        models = [(n, c) for n, c in models if n in only]
    return models


def add_run_arguments(parser):
    """``--seed`` and ``--threads``, which every demo takes."""
    parser.add_argument(
        '--seed',
        type=int,
        help="training seed of every model (default: the configs' 0)")
    parser.add_argument(
        '--threads',
        type=int,
        default=DEMO_THREADS,
        help='OpenMP / MKL threads of every tool (default: %(default)s, '
        'whatever the machine has: the table depends on it)')


def model_dir(work_root, name):
    """work_dirs/demo/<row name as a folder name: lower case, spaces to
    '_', other punctuation dropped>"""
    return osp.join(work_root,
                    re.sub(r'[^a-z0-9_]', '',
                           name.lower().replace(' ', '_')))


def tool_env(threads):
    """The environment of the tools: ``threads`` OpenMP / MKL threads and,
    on x86-64, the AVX2 kernels."""
    env = dict(os.environ)
    for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
        env[var] = str(threads)
    if platform.machine().lower() in ('x86_64', 'amd64'):
        env.update(X86_KERNELS)
    return env


def run(cmd, log_file, threads=DEMO_THREADS):
    """Run a tool quietly; show the log tail and stop if it fails."""
    with open(log_file, 'w') as log:
        status = subprocess.call(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            env=tool_env(threads))
    if status != 0:
        with open(log_file) as log:
            sys.stdout.write(''.join(log.readlines()[-40:]))
        sys.exit(f'[demo] failed ({status}): {" ".join(cmd)}; see {log_file}')


def last_checkpoint(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def train_and_test(name,
                   config,
                   out_root,
                   show=True,
                   seed=None,
                   threads=DEMO_THREADS,
                   options=()):
    """Train CONFIG, test its last checkpoint; returns the test metrics
    (``show``: draw the test predictions under ``<work dir>/vis``;
    ``seed``: instead of the config's seed; ``options``: more
    ``--cfg-options`` of the training)."""
    work_dir = model_dir(out_root, name)
    os.makedirs(work_dir, exist_ok=True)
    start = time.time()
    print(f'[demo] {name}: training {config}', flush=True)
    options = list(options)
    if seed is not None:
        options.append(f'randomness.seed={seed}')
    option_args = ['--cfg-options'] + options if options else []
    run([sys.executable, 'tools/train.py', config, '--work-dir', work_dir] +
        option_args, osp.join(work_dir, 'train.log'), threads)
    checkpoint = last_checkpoint(work_dir)
    print(
        f'[demo] {name}: testing {osp.relpath(checkpoint, REPO_ROOT)}',
        flush=True)
    metrics_file = osp.join(work_dir, 'test_metrics.json')
    show_args = ['--show-dir', osp.join(work_dir, 'vis')] if show else []
    run([
        sys.executable, 'tools/test.py', config, checkpoint, '--work-dir',
        work_dir, '--metrics-json', metrics_file
    ] + show_args, osp.join(work_dir, 'test.log'), threads)
    with open(metrics_file) as f:
        metrics = json.load(f)
    print(f'[demo] {name}: done in {time.time() - start:.0f} s', flush=True)
    return metrics


def draw_token_exchange(work_dir, name, config, threads=DEMO_THREADS):
    """The paper's Figure 4 (Figure 6 for translation) for the TokenFusion
    demo model of row ``name``."""
    tokenfusion_dir = model_dir(work_dir, name)
    checkpoint = last_checkpoint(tokenfusion_dir)
    out_dir = osp.join(tokenfusion_dir, 'figure4')
    run([
        sys.executable, 'tools/analysis_tools/visualize_token_exchange.py',
        config, checkpoint, '--index', '0', '--out-dir', out_dir
    ], osp.join(tokenfusion_dir, 'figure4.log'), threads)
    return out_dir


def draw_translation_grid(models, work_dir, threads=DEMO_THREADS):
    """TokenFusion's Figure 3 for the translation demo: sources | every
    model's output | target, on the first 4 test samples."""
    out = osp.join(work_dir, 'grid.png')
    specs = [
        f'{name}={config}:{last_checkpoint(model_dir(work_dir, name))}'
        for name, config in models
    ]
    run([
        sys.executable, 'tools/analysis_tools/translation_grid.py', *specs,
        '--index', '0', '--index', '1', '--index', '2', '--index', '3',
        '--out', out
    ], osp.join(work_dir, 'grid.log'), threads)
    return out


def missing_modality_table(models, work_dir, threads=DEMO_THREADS):
    """Every model x every missing modality (mIoU), by
    ``tools/analysis_tools/missing_modality.py``; returns the table."""
    out = osp.join(work_dir, 'missing_modality.md')
    specs = [
        f'{config}:{last_checkpoint(model_dir(work_dir, name))}'
        for name, config in models
    ]
    print('[demo] evaluating every model without each modality', flush=True)
    run([
        sys.executable, 'tools/analysis_tools/missing_modality.py', *specs,
        '--work-dir',
        osp.join(work_dir, 'missing_modality'), '--out', out
    ], osp.join(work_dir, 'missing_modality.log'), threads)
    with open(out) as f:
        return f.read().strip()


def format_translation_table(rows):
    """The ensemble's MAE / MSE / PSNR / SSIM of every model (a one-stream
    model's ensemble is its image)."""
    width = max([len('Model')] + [len(name) for name, _ in rows])
    header = (f'| {"Model":<{width}} | {"MAE":>6} | {"MSE":>6} | '
              f'{"PSNR":>6} | {"SSIM":>6} |')
    lines = [
        header,
        '|' + '|'.join('-' * len(c) for c in header.split('|')[1:-1]) + '|'
    ]
    for name, m in rows:
        values = [
            m[f'translation/ensemble_{k}']
            for k in ('mae', 'mse', 'psnr', 'ssim')
        ]
        lines.append(f'| {name:<{width}} | ' +
                     ' | '.join(f'{v:6.2f}' if k == 2 else f'{v:6.4f}'
                                for k, v in enumerate(values)) + ' |')
    return '\n'.join(lines)


def format_table(rows):
    width = max([len('Model')] + [len(name) for name, _ in rows])
    header = (f'| {"Model":<{width}} | {"aAcc":>6} | {"mIoU":>6} | '
              f'{"mAcc":>6} |')
    lines = [
        header,
        '|' + '|'.join('-' * len(c) for c in header.split('|')[1:-1]) + '|'
    ]
    for name, m in rows:
        lines.append(f'| {name:<{width}} | {m["aAcc"]:6.2f} | '
                     f'{m["mIoU"]:6.2f} | {m["mAcc"]:6.2f} |')
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--data',
        default='rgbd',
        choices=sorted(DEMO_DATA),
        help='the synthetic RGB-D set, the RGB / depth / event / LiDAR '
        'set (each modality carries information the others lack), or the '
        'translation set (shade + texture -> RGB)')
    parser.add_argument(
        '--fusion',
        nargs='+',
        default=list(DEFAULT_FUSION),
        help=f'fusion strategies to run besides the baselines, from '
        f"{sorted(DEMO_DATA['rgbd']['fusion'])} (rgbd) or "
        f"{sorted(DEMO_DATA['rgbdel']['fusion'])} (rgbdel), "
        f"{sorted(DEMO_DATA['translation']['fusion'])} (translation), or "
        "'all' / "
        f'\'none\' (default: {" ".join(DEFAULT_FUSION)})')
    parser.add_argument(
        '--missing-modality',
        action='store_true',
        help='also evaluate every model without each of its modalities '
        '(always done for --data rgbdel)')
    parser.add_argument(
        '--work-dir',
        help='where the models, logs and drawings go '
        '(default: work_dirs/demo, work_dirs/demo_rgbdel for rgbdel)')
    parser.add_argument(
        '--only', nargs='+', help='run only the rows with these names')
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    try:
        models = demo_models(args.fusion, args.only, args.data)
    except ValueError as exc:
        parser.error(str(exc))
    work_dir = args.work_dir or osp.join(
        REPO_ROOT, 'work_dirs',
        'demo' if args.data == 'rgbd' else f'demo_{args.data}')
    start = time.time()
    translation = DEMO_DATA[args.data].get('task') == 'translation'
    rows = [(name,
             train_and_test(
                 name,
                 config,
                 work_dir,
                 show=not translation,
                 seed=args.seed,
                 threads=args.threads)) for name, config in models]
    table = (format_translation_table if translation else format_table)(rows)
    if translation:
        grid = draw_translation_grid(models, work_dir, args.threads)
        print(f'[demo] sources | outputs | target: {grid}')
    tokenfusion = DEMO_DATA[args.data]['fusion'].get('tokenfusion')
    if tokenfusion in models:
        figures = draw_token_exchange(work_dir, *tokenfusion, args.threads)
        print(f'[demo] tokens exchanged by TokenFusion: {figures}/')
    if args.missing_modality or args.data == 'rgbdel':
        table += '\n\nmIoU without one modality:\n\n' + \
            missing_modality_table(models, work_dir, args.threads)
    print(f'\n{DEMO_DATA[args.data]["description"]} '
          f'({time.time() - start:.0f} s):\n')
    print(table)
    with open(osp.join(work_dir, 'results.md'), 'w') as f:
        f.write(table + '\n')


if __name__ == '__main__':
    main()
