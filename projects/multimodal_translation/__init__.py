"""Multimodal image-to-image translation (TokenFusion's Taskonomy task):
the fused MiT generator and discriminator and the conditional GAN over
them. Importing the package registers them in mmseg's registries."""
import projects.common.mmengine_compat  # noqa: F401
from .models import *  # noqa: F401,F403
