"""Where a trained 3D TokenFusion model takes the image: per decoder layer,
the fraction of the seeds inside an image that the fusion replaces, by the
ground-truth box class each seed lies in, and in the background.

    python tools/analysis_tools/seed_fusion_statistics.py CONFIG CHECKPOINT \\
        [--group NAME=CLASS,CLASS ...] [--out FILE.json] \\
        [--cfg-options K=V ...]

The runner is built as ``tools/test.py`` builds it (the config's test split,
pipeline and checkpoint loading); every test batch goes through the model
once. A seed counts as replaced when its score is below θ (the hard and
straight-through rules) or below 0.5 (the soft gate: the image has the
larger share). Default groups: every class on its own, ``background`` and
``all``; ``--group table_desk=table,desk`` pools classes.
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

import projects.common.mmengine_compat  # noqa: E402,F401
from projects.common import runner_utils  # noqa: E402


def parse_group(text: str):
    name, sep, regions = text.partition('=')
    if not sep or not name or not regions:
        raise argparse.ArgumentTypeError(
            f'--group takes NAME=CLASS[,CLASS...], got {text!r}')
    return name, regions.split(',')


def seed_statistics(config,
                    checkpoint,
                    work_dir,
                    groups=None,
                    cfg_options=None):
    """The summary of :func:`collect_seed_statistics` for CHECKPOINT."""
    from projects.multimodal_det3d.analysis import collect_seed_statistics
    cfg = runner_utils.load_config(config, 'none', work_dir, cfg_options)
    cfg.load_from = checkpoint
    cfg.resume = False
    runner = runner_utils.build_runner(cfg)
    model = runner.model
    if not hasattr(model, 'seed_fusion'):
        raise TypeError(f'{config}: the model is a {type(model).__name__}, '
                        'not a TokenFusionGroupFree3D; it fuses no seed')
    runner.call_hook('before_run')
    runner.load_or_resume()
    model.eval()
    class_names = runner.test_dataloader.dataset.metainfo['classes']
    if groups:
        known = set(class_names) | {'background'}
        for name, regions in groups.items():
            unknown = set(regions) - known
            if unknown:
                raise ValueError(f'--group {name}: {sorted(unknown)} are not '
                                 f'classes of {config} ({list(class_names)} '
                                 'or background)')
    summary = collect_seed_statistics(model, runner.test_dataloader,
                                      class_names, groups)
    runner.call_hook('after_run')
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument(
        '--group',
        action='append',
        type=parse_group,
        help='NAME=CLASS[,CLASS...] (repeatable; "background" is a region)')
    parser.add_argument('--out', help='write the summary as JSON here')
    parser.add_argument(
        '--work-dir',
        default=osp.join(REPO_ROOT, 'work_dirs', 'seed_fusion_statistics'))
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    groups = dict(args.group) if args.group else None
    summary = seed_statistics(args.config, args.checkpoint, args.work_dir,
                              groups, args.cfg_options)
    for layer, table in summary.items():
        cells = ', '.join(f'{name} {100 * row["replaced"]:.1f} % of '
                          f'{row["visible"]}' for name, row in table.items())
        print(f'{layer} replaced: {cells}')
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(summary, f, indent=1)
    return summary


if __name__ == '__main__':
    main()
