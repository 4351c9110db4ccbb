"""Restarting the optimizer at every stage of a :class:`StagedPolyLR`."""
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ..schedulers.staged_poly_lr import StagedPolyLR


@HOOKS.register_module()
class RestartOptimizerHook(Hook):
    """Clear the optimizer state (Adam moments and step counts) at the start
    of every stage of the run's :class:`StagedPolyLR`, as the reference
    creates a new optimizer per stage."""

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        schedulers = runner.param_schedulers
        if isinstance(schedulers, dict):
            schedulers = [s for group in schedulers.values() for s in group]
        for scheduler in schedulers or []:
            if isinstance(scheduler, StagedPolyLR) and \
                    runner.iter in scheduler.stage_starts:
                runner.optim_wrapper.optimizer.state.clear()
                runner.logger.info(
                    f'Iter {runner.iter}: new stage of the staged schedule, '
                    'optimizer '
                    'state reset')
