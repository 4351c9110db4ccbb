"""Multimodal image-to-image translation (TokenFusion's Taskonomy task):
datasets and transforms, the fused MiT generator and discriminator, the
conditional GAN over them, its optimizer constructor, the image-quality
evaluators and the token-exchange figures. Importing the package registers
them in mmseg's registries."""
import projects.common.mmengine_compat  # noqa: F401
from .datasets import *  # noqa: F401,F403
from .engine import *  # noqa: F401,F403
from .evaluation import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .visualization import *  # noqa: F401,F403
