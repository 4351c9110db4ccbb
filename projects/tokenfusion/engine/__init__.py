from .fusion_stats_hook import TokenFusionStatsHook
from .staged_schedule import (RestartOptimizerHook, StagedPolyLR,
                              staged_poly_factor)

__all__ = [
    'RestartOptimizerHook', 'StagedPolyLR', 'staged_poly_factor',
    'TokenFusionStatsHook'
]
