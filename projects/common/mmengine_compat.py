"""Fixes for mmengine 0.10.7 on current torch and on CPU-only machines.

Applied when :mod:`projects.multimodal_seg` or
:mod:`projects.multimodal_det3d` is imported (configs do it through
``custom_imports``; ``tools/*.py`` import this module first).

1. torch 2.6 switched ``torch.load`` to ``weights_only=True`` by default.
   mmengine 0.10.7 does not pass ``weights_only``, and the checkpoints its
   ``Runner`` writes hold a ``HistoryBuffer`` and numpy scalars in ``meta``,
   so ``--resume``, ``load_from`` and ``tools/test.py CKPT`` fail with
   ``UnpicklingError: Weights only load failed``. mmengine fixed this after
   the 0.10.7 release (commit 151a87ab, PR #1670) by passing
   ``weights_only=False`` in its local loader; we register the same loader
   for local paths. Like that fix, it trusts the checkpoint files it is
   given.
2. mmengine's ``pytorch`` launcher calls ``torch.cuda.set_device`` and its
   ``Runner`` wraps the model in DDP with ``device_ids=[LOCAL_RANK]``
   unconditionally; both fail without CUDA. On CPU we skip ``set_device``
   and pass no ``device_ids``, so multi-process (gloo) training works
   without a GPU. Nothing changes when CUDA is available.
"""
import os.path as osp

import torch
import torch.distributed as torch_dist
from mmengine.dist import utils as dist_utils
from mmengine.model import MMDistributedDataParallel
from mmengine.runner.checkpoint import CheckpointLoader


def load_from_local(filename: str, map_location=None):
    """Load a local checkpoint file (full pickle, as mmengine writes it)."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return torch.load(filename, map_location=map_location, weights_only=False)


CheckpointLoader.register_scheme(
    prefixes='', loader=load_from_local, force=True)

_init_dist_pytorch = dist_utils._init_dist_pytorch


def init_dist_pytorch(backend, init_backend='torch', **kwargs) -> None:
    """mmengine's initialisation, without ``cuda.set_device`` on CPU."""
    if torch.cuda.is_available() or init_backend != 'torch':
        return _init_dist_pytorch(backend, init_backend, **kwargs)
    torch_dist.init_process_group(backend=backend, **kwargs)


dist_utils._init_dist_pytorch = init_dist_pytorch

_ddp_init = MMDistributedDataParallel.__init__


def ddp_init(self, module, detect_anomalous_params=False, **kwargs):
    """DDP of a CPU module takes no ``device_ids``."""
    on_cpu = all(p.device.type == 'cpu' for p in module.parameters())
    if on_cpu and kwargs.get('device_ids') is not None:
        kwargs['device_ids'] = None
    _ddp_init(self, module, detect_anomalous_params, **kwargs)


MMDistributedDataParallel.__init__ = ddp_init
