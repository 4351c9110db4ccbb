from .multimodal_seg_dataset import LAYOUTS, MultiModalSegDataset
from .nyu_rgbd import NYU40_CLASSES, NYUDv2RGBDDataset
from .sunrgbd_seg import SUNRGBD37_CLASSES, SUNRGBDSegDataset
from .synthetic_rgbd import (SYNTHETIC_CLASSES, SyntheticRGBDDataset,
                             generate_synthetic_rgbd, render_sample)

__all__ = [
    'LAYOUTS', 'MultiModalSegDataset', 'NYU40_CLASSES', 'NYUDv2RGBDDataset',
    'SUNRGBD37_CLASSES', 'SUNRGBDSegDataset', 'SYNTHETIC_CLASSES',
    'SyntheticRGBDDataset', 'generate_synthetic_rgbd', 'render_sample'
]
