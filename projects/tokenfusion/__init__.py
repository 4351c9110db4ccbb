"""TokenFusion (Wang et al., CVPR 2022) for multimodal semantic segmentation
in mmseg: the fused MiT backbone, the SegFormer MLP head, the ensemble
segmentor, the staged schedule and the fusion hooks. Importing the package
also registers the multimodal data pipeline it runs on."""
import projects.multimodal_seg  # noqa: F401
from .engine import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
