from .channel_exchange import (channel_exchange, channel_exchange_statistics,
                               channel_sparsity_loss, exchanged_channels)
from .checkpoint_conversion import mit_to_tokenfusion, mmseg_mit_to_nvlabs
from .fused_swin import SWIN_ARCHS, GeminiFusionSwin
from .gemini_fusion import GeminiFusion, gemini_attention, relation_scores
from .modality_layers import ModalityConv2d, ModalityLayerNorm, ModalityLinear
from .segformer_mlp_head import SegFormerMLPHead
from .token_fusion import (allocation_for_grid, exchange_tokens,
                           fuse_attention_output, fusion_statistics,
                           make_group_allocation, scores_from_logits,
                           source_tokens, sparsity_loss)
from .tokenfusion_mit import MIT_ARCHS, TokenFusionMiT
from .tokenfusion_segmentor import TokenFusionEncoderDecoder

__all__ = [
    'GeminiFusionSwin', 'SWIN_ARCHS', 'GeminiFusion', 'gemini_attention',
    'relation_scores', 'MIT_ARCHS', 'ModalityConv2d', 'ModalityLayerNorm',
    'ModalityLinear', 'SegFormerMLPHead', 'TokenFusionEncoderDecoder',
    'TokenFusionMiT', 'allocation_for_grid', 'channel_exchange',
    'channel_exchange_statistics', 'channel_sparsity_loss',
    'exchanged_channels', 'exchange_tokens', 'fuse_attention_output',
    'fusion_statistics', 'make_group_allocation', 'mit_to_tokenfusion',
    'mmseg_mit_to_nvlabs', 'scores_from_logits', 'source_tokens',
    'sparsity_loss'
]
