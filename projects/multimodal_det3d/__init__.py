"""Multimodal 3D object detection for mmdet3d: TokenFusion's GroupFree3D
(points) fused with a YOLOS ViT (images) by projecting seed points into
image patches, the GroupFree3D head for SUN RGB-D, multi-view ScanNet and
the synthetic indoor set, and an inferencer for your own scans.

Importing the package registers its modules in mmdet3d's (and mmdet's)
registries, makes mmcv's CUDA-only point ops run on CPU tensors
(:mod:`projects.common.cpu_point_ops`), mmdet3d's indoor evaluation work
under numpy 2.4 and its inferencers found by name
(:mod:`projects.common.mmdet3d_compat`). It imports nothing
of the segmentation package.
"""
import projects.common.cpu_point_ops  # noqa: F401
import projects.common.fusion_stats_hook  # noqa: F401
import projects.common.mmdet3d_compat  # noqa: F401
import projects.common.mmengine_compat  # noqa: F401
from .apis import *  # noqa: F401,F403
from .checks import CheckPointCloud  # noqa: F401
from .datasets import *  # noqa: F401,F403
from .engine import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
