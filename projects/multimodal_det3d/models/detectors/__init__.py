from .tokenfusion_groupfree3d import TokenFusionGroupFree3D
from .yolos import YOLOS

__all__ = ['TokenFusionGroupFree3D', 'YOLOS']
