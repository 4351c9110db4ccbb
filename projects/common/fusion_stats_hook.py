"""Logging of a fused model's fusion statistics during training (the
segmentors' fusion layers, the 3D detector's seed-key fusion)."""
import logging
import math
from typing import Dict, Optional, Union

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook, LoggerHook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

from .runner_utils import unwrapped_model

# how the per-rank values of each statistic combine across ranks
_REDUCE_OPS = dict(
    exchanged='mean', score_mean='mean', score_min='min', score_max='max')


def sync_fusion_stats(
        stats: Dict[str, float],
        device: Union[str, torch.device] = 'cpu') -> Dict[str, float]:
    """Combine the statistics of all ranks (every rank scores the same
    number of tokens): exchanged fraction and mean averaged, min / max
    reduced, the std pooled from the per-rank means and stds. A no-op
    without distributed training.

    Args:
        stats (dict): ``{'<stage>/<modality>/<statistic>': value}``, the
            same keys on every rank.
        device: Where the reduction runs (the model's device, so that it
            fits the process group's backend).
    """
    if get_world_size() == 1 or not stats:
        return stats
    keys = sorted(stats)
    # the pooled std needs the mean of E[x^2] = std^2 + mean^2 over ranks
    values = dict(stats)
    for key in keys:
        if key.endswith('/score_std'):
            mean_key = key[:-len('score_std')] + 'score_mean'
            values[key] = stats[key]**2 + stats.get(mean_key, 0.)**2
    out = {}
    for op in ('mean', 'min', 'max'):
        chosen = [
            k for k in keys
            if _REDUCE_OPS.get(k.rsplit('/', 1)[-1], 'mean') == op
        ]
        if not chosen:
            continue
        data = torch.tensor([values[k] for k in chosen],
                            dtype=torch.float64,
                            device=device)
        all_reduce(data, op=op)
        out.update(zip(chosen, data.tolist()))
    for key in keys:
        if key.endswith('/score_std'):
            mean = out.get(key[:-len('score_std')] + 'score_mean', 0.)
            out[key] = math.sqrt(max(out[key] - mean**2, 0.))
    return out


@HOOKS.register_module()
class FusionStatsHook(Hook):
    """Publish the statistics of a fused model.

    Every ``interval`` training iterations, the ``fusion_stats`` that the
    model kept from its last ``loss`` call (segmentation token exchange: per
    stage and stream, fraction of exchanged tokens, score mean / std / min /
    max; channel exchange: fraction of exchanged channels per stream; 3D
    seed-key fusion: per decoder layer, the same over the seeds that lie in
    an image) are written to the message hub as
    ``train/<prefix>/<stage>/<modality>/<statistic>``, e.g.
    ``train/fusion/stage1/rgb/exchanged``. The ``LoggerHook`` then prints
    them and hands them to every visualizer backend (``vis_data/
    scalars.json`` of ``LocalVisBackend``, the event file of
    ``TensorboardVisBackend``, ...) as ``fusion/stage1/rgb/exchanged``.

    The logger shows the latest published values, so choose ``interval`` as
    a divisor of the ``LoggerHook`` interval (a warning says otherwise).

    Args:
        interval (int): Publish every ``interval`` training iterations.
            Defaults to 50.
        prefix (str): Key prefix after ``train/``. Defaults to
            ``'fusion'``.
        sync (bool): With distributed training, combine the statistics of
            all ranks (otherwise the logging rank's own). Defaults to True.
    """

    priority = 'NORMAL'  # before the LoggerHook (BELOW_NORMAL)

    def __init__(self,
                 interval: int = 50,
                 prefix: str = 'fusion',
                 sync: bool = True) -> None:
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f'interval must be a positive int, not '
                             f'{interval!r}')
        self.interval = interval
        self.prefix = prefix.strip('/')
        self.sync = sync
        self._warned_empty = False

    def before_train(self, runner) -> None:
        model = unwrapped_model(runner)
        if not hasattr(model, 'fusion_stats'):
            raise TypeError(
                f'{type(self).__name__} needs a model with `fusion_stats` '
                '(a MultiStreamEncoderDecoder or TokenFusionGroupFree3D); '
                f'{type(model).__name__} has none. Remove the hook from '
                '`custom_hooks` or use a fused model.')
        layers = getattr(
            getattr(model, 'backbone', None), 'fusion_layers', None)
        if layers is not None and not layers.blocks:
            print_log(
                f'{type(self).__name__}: the backbone has no fusion layer '
                'acting in any block; nothing will be logged.',
                logger='current',
                level=logging.WARNING)
        for hook in runner.hooks:
            if isinstance(hook, LoggerHook) and \
                    hook.interval % self.interval != 0:
                print_log(
                    f'{type(self).__name__}: interval {self.interval} does '
                    f'not divide the LoggerHook interval {hook.interval}; '
                    'logged fusion statistics repeat the latest values '
                    f'published (every {self.interval} iterations).',
                    logger='current',
                    level=logging.WARNING)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if not self.every_n_train_iters(runner, self.interval):
            return
        raw = unwrapped_model(runner).fusion_stats
        stats = {key: float(value) for key, value in raw.items()}
        if self.sync and stats:
            device = getattr(next(iter(raw.values())), 'device', 'cpu')
            stats = sync_fusion_stats(stats, device)
        if not stats:
            if not self._warned_empty:
                print_log(
                    f'{type(self).__name__}: the model computed no fusion '
                    f'statistics at iteration {runner.iter + 1}',
                    logger='current',
                    level=logging.WARNING)
                self._warned_empty = True
            return
        for key, value in stats.items():
            runner.message_hub.update_scalar(f'train/{self.prefix}/{key}',
                                             value)
