from .deliver import DELIVER_CLASSES, DeLiVERDataset
from .multimodal_seg_dataset import LAYOUTS, MultiModalSegDataset
from .nyu_rgbd import NYU40_CLASSES, NYUDv2RGBDDataset
from .sunrgbd_seg import SUNRGBD37_CLASSES, SUNRGBDSegDataset
from .synthetic_multimodal import (SYNTHETIC_MM_CLASSES,
                                   SyntheticMultiModalDataset,
                                   generate_synthetic_multimodal,
                                   render_multimodal_sample)
from .synthetic_rgbd import (SYNTHETIC_CLASSES, SyntheticRGBDDataset,
                             generate_synthetic_rgbd, render_sample)
from .transforms import *  # noqa: F401,F403

__all__ = [
    'DELIVER_CLASSES', 'DeLiVERDataset', 'SYNTHETIC_MM_CLASSES',
    'SyntheticMultiModalDataset', 'generate_synthetic_multimodal',
    'render_multimodal_sample', 'LAYOUTS', 'MultiModalSegDataset',
    'NYU40_CLASSES', 'NYUDv2RGBDDataset', 'SUNRGBD37_CLASSES',
    'SUNRGBDSegDataset', 'SYNTHETIC_CLASSES', 'SyntheticRGBDDataset',
    'generate_synthetic_rgbd', 'render_sample'
]
