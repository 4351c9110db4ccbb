"""The fusion mathematics, free of any registry: small functions on tensors
and plain ``nn.Module`` building blocks over a modality-stacked batch.

Every OpenMMLab package of this repository (segmentation, 3D detection,
translation) builds on these; this package itself imports only torch, so
it can be tested, reused and exported without mmengine / mmcv / mmseg /
mmdet3d.

* :mod:`.modality_layers`: LayerNorm / Linear / Conv2d shared by the
  modalities or one per modality, applied to the whole stack at once.
* :mod:`.token_exchange`: TokenFusion's token scores, group allocation for
  M > 2, the substitution rule, exchange and its sparsity loss.
* :mod:`.geminifusion`: GeminiFusion's pixel-wise attention and the
  DeLiVER-style hub for more than two modalities.
* :mod:`.channel_exchange`: CEN-style channel exchange on LayerNorm scales.
* :mod:`.token_merging`: MCTF's multi-criteria token merging inside a ViT
  (bidirectional matching, pooling, attention merging, un-merging, a span
  of the sequence left to merge), with ToMe as one of its settings; and a
  merge map on a 2D grid shared by the streams of a modality stack, undone
  inside the block (the fused MiT).
"""
from .channel_exchange import (channel_exchange, channel_exchange_statistics,
                               channel_sparsity_loss, exchanged_channels)
from .geminifusion import (GeminiFusionModule, HubScorePredictor,
                           RelationJudger, gemini_attention, hub_aggregate,
                           hub_scores, hub_update, relation_scores)
from .modality_layers import (ModalityConv2d, ModalityLayerNorm,
                              ModalityLinear, split_modalities)
from .token_exchange import (ScorePredictor, allocation_for_grid,
                             exchange_tokens, fuse_attention_output,
                             fusion_statistics, make_group_allocation,
                             scores_from_logits, source_tokens, sparsity_loss,
                             substitute_below_threshold)

__all__ = [
    'GeminiFusionModule', 'HubScorePredictor', 'ModalityConv2d',
    'ModalityLayerNorm', 'ModalityLinear', 'RelationJudger', 'ScorePredictor',
    'allocation_for_grid', 'channel_exchange', 'channel_exchange_statistics',
    'channel_sparsity_loss', 'exchange_tokens', 'exchanged_channels',
    'fuse_attention_output', 'fusion_statistics', 'gemini_attention',
    'hub_aggregate', 'hub_scores', 'hub_update', 'make_group_allocation',
    'relation_scores', 'scores_from_logits', 'source_tokens', 'sparsity_loss',
    'split_modalities', 'substitute_below_threshold'
]
