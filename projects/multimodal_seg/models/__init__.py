"""Models of multimodal segmentation: fused backbones, their fusion layers,
the SegFormer MLP head, the multi-stream segmentor and the per-modality
data preprocessor."""
from .backbones import *  # noqa: F401,F403
from .data_preprocessor import MODALITY_DEFAULTS, MultiModalSegDataPreProcessor
from .decode_heads import *  # noqa: F401,F403
from .fusion_layers import *  # noqa: F401,F403
from .segmentors import *  # noqa: F401,F403

__all__ = ['MODALITY_DEFAULTS', 'MultiModalSegDataPreProcessor']
