"""Evaluate models with every single modality missing and print one table.

Usage::

    python tools/analysis_tools/missing_modality.py CONFIG:CKPT \\
        [CONFIG:CKPT ...] [--out table.md] [--cfg-options K=V ...]

For every model the test set is evaluated by ``tools/test.py`` (in a
subprocess, with ``--metrics-json``) once with all modalities and once per
modality of the model's data preprocessor with that modality removed
(``model.data_preprocessor.missing_modalities=[m]``: its normalised
channels are zeros, i.e. the dataset mean). The mIoU values are collected
into one markdown table: a row per model, the columns ``mIoU all`` and
``without <m>`` for every modality of any model (``-`` where a model does
not use the modality). Logs and metrics are in
``<work-dir>/<model>/<all | without_<m>>/``.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from mmengine.config import Config, DictAction

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TEST_TOOL = osp.join(REPO_ROOT, 'tools', 'test.py')


def parse_model(spec):
    """'CONFIG:CKPT' -> (config, checkpoint)."""
    index = spec.find('.py:')
    if index < 0:
        raise argparse.ArgumentTypeError(
            f'{spec!r} is not CONFIG:CKPT (a .py config, a colon and a '
            'checkpoint)')
    return spec[:index + 3], spec[index + 4:]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'models',
        nargs='+',
        type=parse_model,
        metavar='CONFIG:CKPT',
        help='a config and its checkpoint')
    parser.add_argument('--out', help='also write the table to this file')
    parser.add_argument(
        '--work-dir',
        default=osp.join(REPO_ROOT, 'work_dirs', 'missing_modality'),
        help='where the logs and metrics of the test runs go')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        help='config overrides passed to every tools/test.py run')
    parser.add_argument(
        '--jobs',
        type=int,
        default=1,
        help='number of tools/test.py runs of a model at the same time')
    return parser.parse_args(argv)


def config_modalities(config, cfg_options):
    """The modality names of a config's data preprocessor."""
    cfg = Config.fromfile(config)
    if cfg_options:
        namespace = argparse.Namespace()
        DictAction(
            option_strings=[], dest='options')(None, namespace, cfg_options)
        cfg.merge_from_dict(namespace.options)
    preprocessor = cfg.model.get('data_preprocessor') or {}
    modalities = preprocessor.get('modalities')
    if not modalities:
        raise ValueError(f'{config}: model.data_preprocessor has no '
                         '`modalities` (not a MultiModalSegDataPreProcessor '
                         'config?)')
    return [m if isinstance(m, str) else m['name'] for m in modalities]


def model_name(config):
    return osp.splitext(osp.basename(config))[0]


def run_test(config, checkpoint, work_dir, cfg_options, missing=None):
    """Run tools/test.py; returns its metrics dict."""
    os.makedirs(work_dir, exist_ok=True)
    metrics_file = osp.join(work_dir, 'metrics.json')
    options = list(cfg_options)
    if missing is not None:
        options.append(
            f'model.data_preprocessor.missing_modalities=[{missing}]')
    cmd = [
        sys.executable, TEST_TOOL, config, checkpoint, '--work-dir', work_dir,
        '--metrics-json', metrics_file
    ]
    if options:
        cmd += ['--cfg-options'] + options
    log_file = osp.join(work_dir, 'test.log')
    with open(log_file, 'w') as log:
        status = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
    if status != 0:
        with open(log_file) as log:
            sys.stdout.write(''.join(log.readlines()[-40:]))
        raise RuntimeError(f'tools/test.py failed ({status}): '
                           f'{" ".join(cmd)}; see {log_file}')
    with open(metrics_file) as f:
        return json.load(f)


def evaluate(config, checkpoint, work_dir, cfg_options, jobs=1):
    """{'all': mIoU, <modality>: mIoU without it, ...} of one model."""
    name = model_name(config)
    variants = [None] + config_modalities(config, cfg_options)

    def run_variant(missing):
        label = 'all' if missing is None else f'without_{missing}'
        print(f'[missing_modality] {name}: {label}', flush=True)
        return run_test(config, checkpoint, osp.join(work_dir, label),
                        cfg_options, missing)

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        metrics = list(pool.map(run_variant, variants))
    return {
        'all' if missing is None else missing: m['mIoU']
        for missing, m in zip(variants, metrics)
    }


def format_table(rows):
    """rows: [(model name, {'all': mIoU, modality: mIoU, ...})]."""
    modalities = []
    for _, result in rows:
        modalities += [m for m in result if m != 'all' and m not in modalities]
    header = ['Model', 'mIoU all'] + [f'without {m}' for m in modalities]
    lines = [
        '| ' + ' | '.join(header) + ' |',
        '|' + '|'.join(['---'] + ['---:'] * (len(header) - 1)) + '|'
    ]
    for name, result in rows:
        cells = [name] + [
            f'{result[k]:.2f}' if k in result else '-'
            for k in ['all'] + modalities
        ]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    rows = []
    for config, checkpoint in args.models:
        name = model_name(config)
        if any(name == row[0] for row in rows):  # same config, other ckpt
            name = f'{name} ({osp.basename(checkpoint)})'
        rows.append((name,
                     evaluate(config, checkpoint,
                              osp.join(args.work_dir, name.replace(' ', '_')),
                              args.cfg_options, args.jobs)))
    table = format_table(rows)
    print(table)
    if args.out:
        out_dir = osp.dirname(osp.abspath(args.out))
        os.makedirs(out_dir, exist_ok=True)
        with open(args.out, 'w') as f:
            f.write(table + '\n')
    return table


if __name__ == '__main__':
    main()
