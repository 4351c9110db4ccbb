# The statistics hook is shared with the 3D detector; importing it here
# registers it for every segmentation config.
from projects.common.fusion_stats_hook import (FusionStatsHook,
                                               sync_fusion_stats)
from .restart_optimizer_hook import RestartOptimizerHook

__all__ = ['FusionStatsHook', 'RestartOptimizerHook', 'sync_fusion_stats']
