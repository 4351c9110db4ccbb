"""Multimodal (RGB + depth / HHA / event / LiDAR ...) semantic segmentation
for mmseg: datasets and transforms, the per-modality data preprocessor,
fused backbones (MiT, Swin) with pluggable fusion layers (TokenFusion's
token exchange, GeminiFusion, channel exchange), the multi-stream
segmentor, training hooks and schedules, the panel visualizer and the
inferencer.
Importing the package registers all of them in mmseg's registries."""
import projects.common.mmengine_compat  # noqa: F401
from .apis import *  # noqa: F401,F403,E402
from .datasets import *  # noqa: F401,F403
from .engine import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .visualization import *  # noqa: F401,F403
