from .fused_mit import MIT_ARCHS, FusedMiT
from .fused_swin import SWIN_ARCHS, FusedSwin

__all__ = ['MIT_ARCHS', 'SWIN_ARCHS', 'FusedMiT', 'FusedSwin']
