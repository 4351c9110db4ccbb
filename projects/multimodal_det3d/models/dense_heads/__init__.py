from .groupfree3d_head import TokenFusionGroupFree3DHead
from .yolos_head import YOLOSHead

__all__ = ['TokenFusionGroupFree3DHead', 'YOLOSHead']
