"""Datasets and transforms of TokenFusion for 3D detection."""
from .multiview_loading import LoadMultiViewPosedImages
from .scannet_multiview import MultiViewScanNetDataset
from .synthetic_indoor import (SYNTHETIC_CLASSES, SyntheticIndoorDataset,
                               generate_synthetic_indoor)

__all__ = [
    'LoadMultiViewPosedImages', 'MultiViewScanNetDataset', 'SYNTHETIC_CLASSES',
    'SyntheticIndoorDataset', 'generate_synthetic_indoor'
]
