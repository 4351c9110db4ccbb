"""Datasets and transforms of multimodal 3D detection."""
from .scannet_multiview import MultiViewScanNetDataset
from .synthetic_indoor import (SYNTHETIC_CLASSES, SyntheticIndoorDataset,
                               generate_synthetic_indoor)
from .transforms import LoadMultiViewPosedImages

__all__ = [
    'LoadMultiViewPosedImages', 'MultiViewScanNetDataset', 'SYNTHETIC_CLASSES',
    'SyntheticIndoorDataset', 'generate_synthetic_indoor'
]
