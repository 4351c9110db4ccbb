from .hooks import FusionStatsHook, RestartOptimizerHook, sync_fusion_stats
from .schedulers import StagedPolyLR, staged_poly_factor

__all__ = [
    'FusionStatsHook', 'RestartOptimizerHook', 'StagedPolyLR',
    'staged_poly_factor', 'sync_fusion_stats'
]
