"""Multimodal (RGB + depth / HHA / ...) semantic segmentation for mmseg:
datasets, loading and packing transforms, the per-modality data
preprocessor and the panel visualizer. Importing the package registers all
of them in mmseg's registries."""
from .datasets import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .transforms import *  # noqa: F401,F403
from .visualization import *  # noqa: F401,F403
