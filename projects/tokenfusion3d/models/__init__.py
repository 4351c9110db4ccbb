"""Models of TokenFusion for 3D detection."""
from .groupfree3d_head import TokenFusionGroupFree3DHead
from .seed_fusion import SeedKeyFusion
from .tokenfusion_groupfree3d import TokenFusionGroupFree3D
from .yolos_detector import YOLOS
from .yolos_head import YOLOSHead
from .yolos_vit import YOLOSViT

__all__ = [
    'SeedKeyFusion', 'TokenFusionGroupFree3D', 'TokenFusionGroupFree3DHead',
    'YOLOS', 'YOLOSHead', 'YOLOSViT'
]
