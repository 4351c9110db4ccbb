"""MCTF (multi-criteria token fusion) for ViTs in mmpretrain, with ToMe as
one of its settings: the merging ViT backbone, the token-reduction
consistency classifier and the synthetic shapes set of the demo. The
merging itself is the registry-free
:mod:`projects.fusion_math.token_merging`. Importing the package registers
the modules in mmpretrain's registries."""
from .datasets import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
