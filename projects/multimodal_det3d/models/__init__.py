"""Models of multimodal 3D detection."""
from .backbones import YOLOSViT
from .dense_heads import TokenFusionGroupFree3DHead, YOLOSHead
from .detectors import YOLOS, TokenFusionGroupFree3D
from .fusion_layers import SeedKeyFusion

__all__ = [
    'SeedKeyFusion', 'TokenFusionGroupFree3D', 'TokenFusionGroupFree3DHead',
    'YOLOS', 'YOLOSHead', 'YOLOSViT'
]
