"""Fusion layers of the fused segmentation backbones (see :mod:`.base`),
and the modality hubs that decide how many streams the blocks run."""
from .auxiliary_hub import AuxiliaryHub, ModalityStreams
from .base import (FUSION_POINTS, BaseFusionLayer, FusionLayers, FusionSite,
                   HostsFusionLayers)
from .channel_exchange import ChannelExchange
from .geminifusion import GeminiFusion
from .token_exchange import TokenExchange

__all__ = [
    'AuxiliaryHub', 'BaseFusionLayer', 'ChannelExchange', 'FUSION_POINTS',
    'FusionLayers', 'FusionSite', 'GeminiFusion', 'HostsFusionLayers',
    'ModalityStreams', 'TokenExchange'
]
