"""TokenFusion's training schedule: stages of warm-up + poly (each with a
new optimizer, see :class:`~..hooks.RestartOptimizerHook`)."""
from typing import Sequence

from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import _ParamScheduler
from mmseg.registry import PARAM_SCHEDULERS


def staged_poly_factor(step: int, stage_iters: int,
                       stage_factors: Sequence[float], warmup_iters: int,
                       warmup_ratio: float, poly_iters: int,
                       power: float) -> float:
    """Learning-rate multiplier at iteration ``step`` (0-based).

    Stage k = step // stage_iters (the last stage continues) has the base
    factor ``stage_factors[k]``; inside a stage, t = step - k * stage_iters
    restarts at 0: linear warm-up from ``warmup_ratio`` to 1 over
    ``warmup_iters``, then ``(1 - t / poly_iters) ** power`` (the
    reference's ``PolyWarmupAdamW``, t counting from the stage start).
    """
    stage = min(step // stage_iters, len(stage_factors) - 1)
    t = step - stage * stage_iters
    if t < warmup_iters:
        factor = 1 - (1 - t / warmup_iters) * (1 - warmup_ratio)
    else:
        factor = max(0., 1 - t / poly_iters)**power
    return stage_factors[stage] * factor


@PARAM_SCHEDULERS.register_module()
class StagedPolyLR(LRSchedulerMixin, _ParamScheduler):
    """The reference TokenFusion schedule: ``len(stage_factors)`` stages of
    ``stage_iters`` iterations (3 x 100 epochs with lr 6e-5, 3e-5, 1.5e-5),
    each with its own 1500-iteration warm-up and poly decay over
    ``poly_iters`` (40000); see :func:`staged_poly_factor`. Pair it with
    :class:`RestartOptimizerHook` to also reset the optimizer state at each
    stage, as the reference builds a new optimizer per stage.

    The factor multiplies each parameter group's initial lr, so paramwise
    multipliers (head x10) are kept.
    """

    def __init__(self,
                 optimizer,
                 stage_iters: int,
                 stage_factors: Sequence[float] = (1., .5, .25),
                 warmup_iters: int = 1500,
                 warmup_ratio: float = 1e-6,
                 poly_iters: int = 40000,
                 power: float = 1.0,
                 begin: int = 0,
                 end: int = 10**9,
                 last_step: int = -1,
                 by_epoch: bool = False,
                 verbose: bool = False) -> None:
        if by_epoch:
            raise ValueError('StagedPolyLR counts iterations')
        self.stage_iters = stage_iters
        self.stage_factors = tuple(stage_factors)
        self.warmup_iters = warmup_iters
        self.warmup_ratio = warmup_ratio
        self.poly_iters = poly_iters
        self.power = power
        super().__init__(  # LRSchedulerMixin passes param_name='lr'
            optimizer,
            begin=begin,
            end=end,
            last_step=last_step,
            by_epoch=False,
            verbose=verbose)

    def factor(self, step: int) -> float:
        return staged_poly_factor(step - self.begin, self.stage_iters,
                                  self.stage_factors, self.warmup_iters,
                                  self.warmup_ratio, self.poly_iters,
                                  self.power)

    def _get_value(self):
        factor = self.factor(self.last_step)
        return [base * factor for base in self.base_values]

    @property
    def stage_starts(self):
        return [
            self.begin + k * self.stage_iters
            for k in range(1, len(self.stage_factors))
        ]
