"""Test (evaluate) a checkpoint with any config of this repository.

Runs from any working directory (see ``tools/train.py``).
``--show-dir DIR`` saves the visualizer's drawings (for the multimodal
segmentation configs: RGB | depth | prediction | ground truth rows);
``--out DIR`` dumps predictions; ``--tta`` uses the config's test-time
augmentation; ``--metrics-json FILE`` writes the final metrics as JSON.
"""
import argparse
import json
import os
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from mmengine.config import Config, DictAction  # noqa: E402

# importing the compat module makes checkpoints load under torch >= 2.6
import projects.common.mmengine_compat  # noqa: E402,F401
from projects.common import runner_utils  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='directory for the test logs')
    parser.add_argument(
        '--out', help='directory to dump the prediction results into')
    parser.add_argument(
        '--show', action='store_true', help='show the drawn results')
    parser.add_argument(
        '--show-dir',
        help='directory for the drawings (relative to the working directory, '
        'as in mmseg)')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='show interval (s)')
    parser.add_argument(
        '--tta', action='store_true', help='test-time augmentation')
    parser.add_argument(
        '--metrics-json', help='write the evaluation metrics to this file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def enable_visualization(cfg: Config, args) -> None:
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise RuntimeError(
            f'{args.config} has no default_hooks.visualization; --show and '
            '--show-dir need one')
    hook['draw'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        cfg.visualizer['save_dir'] = args.show_dir
        hook['interval'] = 1


def build_cfg(args) -> Config:
    cfg = runner_utils.load_config(args.config, args.launcher, args.work_dir,
                                   args.cfg_options)
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        enable_visualization(cfg, args)
    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise KeyError(f'{args.config} defines no tta_model / '
                           'tta_pipeline')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if args.out is not None:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = build_cfg(args)
    runner = runner_utils.build_runner(cfg)
    metrics = runner.test()
    if args.metrics_json and runner.rank == 0:
        with open(args.metrics_json, 'w') as f:
            json.dump({k: float(v) for k, v in metrics.items()}, f, indent=1)
    return metrics


if __name__ == '__main__':
    main()
    runner_utils.end_distributed_process()
