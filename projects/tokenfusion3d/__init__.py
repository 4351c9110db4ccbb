"""TokenFusion for 3D object detection in mmdet3d: GroupFree3D (points)
fused with a YOLOS ViT (images) by projecting seed points into image
patches. Importing the package also makes mmcv's CUDA-only point ops run on
CPU tensors (:mod:`projects.cpu_point_ops`) and mmdet3d's indoor evaluation
work under numpy 2.4 (:mod:`projects.mmdet3d_compat`)."""
import projects.cpu_point_ops  # noqa: F401
import projects.mmdet3d_compat  # noqa: F401
from .checks import CheckPointCloud  # noqa: F401
from .datasets import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
