"""TokenFusion (Wang et al., CVPR'22) as a fusion layer: token scores and
the exchange of uninformative tokens."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmseg.registry import MODELS
from torch import Tensor

from projects.fusion_math import token_merging as merging
# yapf: disable
from projects.fusion_math.token_exchange import (ScorePredictor,
                                                 allocation_for_grid,
                                                 exchange_tokens,
                                                 fuse_attention_output,
                                                 fusion_statistics,
                                                 make_group_allocation,
                                                 sparsity_loss)
# yapf: enable
from .base import BaseFusionLayer

VARIANTS = ('attention', 'token')
REDUCTIONS = ('sum', 'mean')


@MODELS.register_module()
class TokenExchange(BaseFusionLayer):
    """TokenFusion's token exchange.

    At the input x of every fused block the stage's score predictor gives
    each token of each stream a score s in (0, 1) (one predictor per
    stage, shared by the stage's fused blocks, as the reference). With
    A_m the attention branch output of stream m and src(m) the stream a
    token of m takes over (the other one for two streams, the group
    allocation for more):

    * ``variant='attention'`` (the reference code, which produced the
      published numbers): before the residual add,
      ``Â_m = A_m ⊙ s_m`` where ``s_m >= θ`` and ``Â_m = A_src(m) ⊙
      s_src(m)`` where ``s_m < θ``;
    * ``variant='token'`` (the paper's text): ``Â_m = A_m ⊙ s_m``, and
      after the whole block the tokens of m scored below θ are replaced by
      those of src(m) at the same position.

    The exchange is hard; the scores reach the loss through the weighting
    and through the l1 sparsity term ``loss_sparsity = λ · Σ s`` over the
    fused blocks, streams, images and tokens (``sparsity_reduction='sum'``,
    the reference, whose λ then depends on crop and batch size) or its
    mean (``'mean'``).

    For more than two streams every stage has a random group allocation:
    the P x P positions of a pattern are split per stream into S - 1 equal
    groups, one per other stream, and the pattern tiles the token grid
    (buffer ``allocation`` (stages, S, P, P), saved with the checkpoint;
    stage k uses the k-th draw of a generator seeded with
    ``allocation_seed``).

    Parameters: ``score_predictors.{stage}`` (:class:`ScorePredictor`, the
    reference's ``PredictorLG``, per stream weights).

    Args:
        threshold (float): θ. Defaults to 0.02.
        variant (str): ``'attention'`` or ``'token'``, see above.
        sparsity_weight (float): λ. Defaults to 1e-6 (the reference's B3
            recipe with the summed reduction).
        sparsity_reduction (str): ``'sum'`` or ``'mean'``.
        allocation_pattern (int): P. Defaults to 32.
        allocation_seed (int): Defaults to 0.
        **kwargs: :class:`BaseFusionLayer` arguments (placement included).
    """

    def __init__(self,
                 threshold: float = 0.02,
                 variant: str = 'attention',
                 sparsity_weight: float = 1e-6,
                 sparsity_reduction: str = 'sum',
                 allocation_pattern: int = 32,
                 allocation_seed: int = 0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if variant not in VARIANTS:
            raise ValueError(f'TokenExchange variant must be one of '
                             f'{VARIANTS}, got {variant!r}')
        if sparsity_reduction not in REDUCTIONS:
            raise ValueError(f'sparsity_reduction must be one of '
                             f'{REDUCTIONS}, got {sparsity_reduction!r}')
        self.threshold = threshold
        self.variant = variant
        self.sparsity_weight = sparsity_weight
        self.sparsity_reduction = sparsity_reduction
        self.score_predictors = nn.ModuleDict({
            str(s):
            ScorePredictor(self.num_streams, self.channels[s])
            for s in self.placement
        })
        if self.num_streams > 2:
            generator = torch.Generator().manual_seed(allocation_seed)
            self.register_buffer(
                'allocation',
                torch.stack([
                    make_group_allocation(self.num_streams, allocation_pattern,
                                          generator) for _ in self.depths
                ]))
        else:
            self.allocation = None
        self.scores: List[Tensor] = []
        self.score_blocks: List[str] = []
        self._allocation: Optional[Tensor] = None
        self._merge: Optional[merging.GridMerge] = None
        self._merged_allocation: Optional[Tensor] = None

    @property
    def block_names(self) -> List[str]:
        """``'block<s>.<j>'`` (1-based stage, as the backbone's modules) of
        every block the layer acts in, in forward order: the order of
        :attr:`scores` after a forward."""
        return [f'block{s + 1}.{j}' for s, j in self.placed_blocks]

    def begin_forward(self) -> None:
        self.scores, self.score_blocks = [], []

    def begin_block(self, stage: int, block: int, x: Tensor,
                    hw: Tuple[int, int]) -> None:
        self.scores.append(self.score_predictors[str(stage)](x))
        self.score_blocks.append(f'block{stage + 1}.{block}')
        self._allocation = None if self.allocation is None else \
            allocation_for_grid(self.allocation[stage], *hw)
        self._merge = None

    def merge_tokens(self, stage: int, block: int, merge) -> None:
        """The attention output will be the merged tokens: its exchange uses
        the group means of the scores and the allocation of each group's
        first grid position, per image."""
        self._merge = merge
        if self._allocation is not None:
            first = merging.group_first(merge)  # (B, N')
            self._merged_allocation = self._allocation[:, first]

    def _stacked(self, y: Tensor) -> Tensor:
        return y.reshape(self.num_streams, -1, *y.shape[1:])

    def fuse_attention_output(self, stage: int, block: int,
                              y: Tensor) -> Tensor:
        stacked, scores = self._stacked(y), self.scores[-1]
        allocation = self._allocation
        if self._merge is not None:
            scores = merging.grid_merge(self._merge,
                                        scores.flatten(0, 1)[..., None])
            scores = scores[..., 0].reshape(stacked.shape[:3])
            allocation = self._merged_allocation
        if self.variant == 'attention':
            stacked = fuse_attention_output(stacked, scores, self.threshold,
                                            allocation)
        else:
            stacked = stacked * scores.unsqueeze(-1)
        return stacked.reshape(y.shape)

    def end_block(self, stage: int, block: int, x: Tensor) -> Tensor:
        if self.variant == 'attention':
            return x
        return exchange_tokens(
            self._stacked(x), self.scores[-1], self.threshold,
            self._allocation).reshape(x.shape)

    def loss(self) -> Dict[str, Tensor]:
        if not self.scores:
            return {}
        return {
            'loss_sparsity':
            self.sparsity_weight *
            sparsity_loss(self.scores, self.sparsity_reduction)
        }

    def statistics(self, stream_names: Sequence[str]) -> Dict[str, Tensor]:
        return fusion_statistics(self.scores, self.score_blocks,
                                 self.threshold, stream_names)

    def extra_repr(self) -> str:
        return (f'threshold={self.threshold}, variant={self.variant!r}, '
                f'streams={self.num_streams}, stages={list(self.placement)}')
