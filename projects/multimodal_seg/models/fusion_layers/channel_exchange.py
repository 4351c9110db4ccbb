"""CEN-style channel exchange (Wang et al., NeurIPS'20) as a fusion layer,
the channel-wise fusion of the TokenFusion supplementary (Table 9)."""
from typing import Dict, Sequence, Tuple

import torch.nn as nn
from mmseg.registry import MODELS
from torch import Tensor

from projects.fusion_math.channel_exchange import (channel_exchange,
                                                   channel_exchange_statistics,
                                                   channel_sparsity_loss)
from .base import BaseFusionLayer

EXCHANGE_NORMS = ('norm1', 'norm2')


@MODELS.register_module()
class ChannelExchange(BaseFusionLayer):
    """Channel exchange on the per-stream LayerNorms of the blocks it acts
    in: right after LayerNorm ``name`` (any of ``norms``), channel c of
    stream m is replaced by the other stream's channel c (the mean of the
    others for more than two streams) where that norm's scale factor
    ``|γ_m,c| < θ``::

        y_m[..., c] = y_m[..., c]                  if |γ_m,c| >= θ
                    = mean_{k != m} y_k[..., c]     otherwise.

    Residual streams, patch embeddings, the attention's reduction norm and
    the stage norms are not exchanged. With ``sparsity_weight`` λ2 > 0 the
    loss holds ``loss_channel_sparsity = λ2 · Σ|γ|`` over the exchanging
    norms, streams and channels, which makes channels exchangeable. Adds no
    parameter. Needs one LayerNorm per stream (``share_norms=False``).

    Args:
        threshold (float): θ_c. Defaults to 2e-2 (CEN).
        norms (Sequence[str]): Which LayerNorms of a block exchange, any of
            ``('norm1', 'norm2')`` (the norms feeding attention and
            Mix-FFN). Defaults to both.
        sparsity_weight (float): λ2. Defaults to 0 (CEN / Table 9: 1e-3).
        **kwargs: :class:`BaseFusionLayer` arguments (placement included).
    """

    def __init__(self,
                 threshold: float = 2e-2,
                 norms: Sequence[str] = EXCHANGE_NORMS,
                 sparsity_weight: float = 0.,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        norms = tuple(norms)
        if not norms or not set(norms) <= set(EXCHANGE_NORMS):
            raise ValueError(f'ChannelExchange norms must be among '
                             f'{EXCHANGE_NORMS}, got {norms}')
        self.threshold = threshold
        self.norms = norms
        self.sparsity_weight = sparsity_weight
        # scale factors of the exchanging norms met in the last forward
        self.gammas: Dict[Tuple[int, int, str], Tensor] = {}

    def begin_forward(self) -> None:
        self.gammas = {}

    def fuse_normed(self, stage: int, block: int, name: str, y: Tensor,
                    norm: nn.Module) -> Tensor:
        if name not in self.norms:
            return y
        gammas = norm.weight
        if gammas.shape[0] != self.num_streams:
            raise ValueError(
                f'ChannelExchange needs one LayerNorm per stream: '
                f'block{stage + 1}.{block}.{name} has {gammas.shape[0]} '
                f'scale vector(s) for {self.num_streams} streams '
                '(set share_norms=False)')
        self.gammas[(stage, block, name)] = gammas
        stacked = y.reshape(self.num_streams, -1, y.shape[-1])
        return channel_exchange(stacked, gammas,
                                self.threshold).reshape(y.shape)

    def loss(self) -> Dict[str, Tensor]:
        if not self.sparsity_weight or not self.gammas:
            return {}
        return {
            'loss_channel_sparsity':
            self.sparsity_weight *
            channel_sparsity_loss(list(self.gammas.values()))
        }

    def statistics(self, stream_names: Sequence[str]) -> Dict[str, Tensor]:
        if not self.gammas:
            return {}
        return channel_exchange_statistics(
            list(self.gammas.values()), self.threshold, stream_names)

    def extra_repr(self) -> str:
        return (f'threshold={self.threshold}, norms={self.norms}, '
                f'sparsity_weight={self.sparsity_weight}')
