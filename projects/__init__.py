"""OpenMMLab plugin packages for multimodal fusion.

Importing any sub-package (as configs do through ``custom_imports``) first
applies :mod:`projects.mmengine_compat`, so full mmengine checkpoints load
under torch >= 2.6.
"""
from . import mmengine_compat  # noqa: F401
