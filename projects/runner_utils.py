"""What tools/train.py and tools/test.py share."""
import os.path as osp
from typing import Optional

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
