"""What tools/train.py and tools/test.py share."""
import os.path as osp
from typing import Optional

import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner


def load_config(path: str,
                launcher: str = 'none',
                work_dir: Optional[str] = None,
                cfg_options: Optional[dict] = None) -> Config:
    """Read a config, apply ``--cfg-options`` and fix the work dir (command
    line > config > ``./work_dirs/<config name>``)."""
    cfg = Config.fromfile(path)
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(path))[0])
    return cfg


def build_runner(cfg: Config) -> Runner:
    """The config's own runner type if it names one, else mmengine's."""
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def shut_down_distributed() -> None:
    """Wait for every rank, then destroy the process group.

    Leaving it to interpreter exit lets gloo's worker threads be destroyed
    while still joinable, which aborts a rank with "terminate called without
    an active exception" and fails the whole torchrun job after a finished
    run.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()
