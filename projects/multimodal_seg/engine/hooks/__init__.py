from .fusion_stats_hook import FusionStatsHook, sync_fusion_stats
from .restart_optimizer_hook import RestartOptimizerHook

__all__ = ['FusionStatsHook', 'RestartOptimizerHook', 'sync_fusion_stats']
