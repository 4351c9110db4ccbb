"""TokenFusion's fusion step as small pure functions on tensors, and the
token score predictor.

Shapes: M modalities, B images, N tokens, C channels. Per-modality tensors
are (M, B, N, C); scores are (M, B, N).
"""
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .modality_layers import ModalityLayerNorm, ModalityLinear


def scores_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Token scores of the score predictor: softmax over its 2 logits,
    channel 0 ("informative"). (..., 2) -> (...) in (0, 1)."""
    return logits.softmax(dim=-1)[..., 0]


def make_group_allocation(
        num_modalities: int,
        pattern_size: int,
        generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The paper's allocation for M > 2 modalities.

    For every modality m the P*P positions of a pattern are split at random
    into M-1 groups of equal size (up to one position), group g bound to the
    g-th other modality: a token of m at such a position is replaced by that
    modality's token. Token grids of any size tile the pattern (see
    :func:`allocation_for_grid`).

    Returns:
        LongTensor (M, P, P): the source modality of each position, never
        the modality itself.
    """
    m, p = num_modalities, pattern_size
    if m < 2:
        raise ValueError('token exchange needs at least 2 modalities')
    allocation = torch.empty(m, p * p, dtype=torch.long)
    for target in range(m):  # a one-off setup loop, not in the forward
        others = torch.tensor([s for s in range(m) if s != target])
        groups = torch.arange(p * p) % (m - 1)
        perm = torch.randperm(p * p, generator=generator)
        allocation[target, perm] = others[groups]
    return allocation.view(m, p, p)


def allocation_for_grid(allocation: torch.Tensor, height: int,
                        width: int) -> torch.Tensor:
    """Tile an (M, P, P) allocation pattern over an H x W token grid.

    Position (i, j) takes the pattern's (i mod P, j mod P), the same as
    repeating the pattern and cropping it to H x W. It is written as an
    index computation on ``arange(H)`` / ``arange(W)`` rather than as a
    repeat count derived from H and W in Python, so that a traced graph
    (ONNX export with dynamic height and width) keeps H and W symbolic.

    Returns:
        LongTensor (M, H*W).
    """
    m, p, _ = allocation.shape
    rows = torch.arange(height, device=allocation.device) % p
    cols = torch.arange(width, device=allocation.device) % p
    return allocation[:, rows[:, None], cols[None, :]].reshape(m, -1)


def source_tokens(x: torch.Tensor,
                  allocation: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The token each position would take from another modality.

    Args:
        x (Tensor): (M, B, N, C).
        allocation (LongTensor, optional): (M, N) source modality per
            position, or (M, B, N) per image; required for M > 2. For M = 2
            the source is the other modality.

    Returns:
        Tensor (M, B, N, C): ``out[m, b, n] = x[src(m, n), b, n]``.
    """
    m = x.shape[0]
    if m == 2 and allocation is None:
        return x.flip(0)
    if allocation is None:
        raise ValueError(f'{m} modalities need a group allocation')
    allocation = allocation.to(x.device)
    if allocation.dim() == 2:
        allocation = allocation[:, None]
    index = allocation[..., None].expand(m, x.shape[1], x.shape[2], x.shape[3])
    return torch.gather(x, 0, index)


def substitute_below_threshold(x: Tensor,
                               replacement: Tensor,
                               scores: Tensor,
                               threshold: float,
                               allowed: Optional[Tensor] = None) -> Tensor:
    """TokenFusion's substitution rule: a token whose score is below θ is
    replaced, every other token is kept.

    ``out[i] = replacement[i] if scores[i] < threshold (and allowed[i])
    else x[i]``. The decision is hard: gradients flow into the token that
    is used, not into the decision.

    Args:
        x (Tensor): (..., C) the tokens.
        replacement (Tensor): (..., C) what a replaced token becomes.
        scores (Tensor): (...) keep scores.
        threshold (float): θ.
        allowed (BoolTensor, optional): (...) where a replacement may
            happen at all (e.g. a 3D seed that projects into an image).

    Returns:
        Tensor: (..., C).
    """
    replace = scores < threshold
    if allowed is not None:
        replace = replace & allowed
    return torch.where(replace.unsqueeze(-1), replacement, x)


def exchange_tokens(x: torch.Tensor,
                    scores: torch.Tensor,
                    threshold: float,
                    allocation: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Replace the tokens whose own score is below ``threshold`` by the
    allocated other modality's token at the same position.

    ``out[m, b, n] = x[m, b, n] if scores[m, b, n] >= threshold else
    x[src(m, n), b, n]``. The decision is hard: gradients flow into the
    token that is used, not into the decision.

    Args:
        x (Tensor): (M, B, N, C).
        scores (Tensor): (M, B, N).
        threshold (float): θ (0.02 in the reference).
        allocation (LongTensor, optional): see :func:`source_tokens`.
    """
    return substitute_below_threshold(x, source_tokens(x, allocation), scores,
                                      threshold)


def fuse_attention_output(
        attn_out: torch.Tensor,
        scores: torch.Tensor,
        threshold: float,
        allocation: Optional[torch.Tensor] = None) -> torch.Tensor:
    """What the reference code does in every fused block, before the
    residual add: weight each modality's attention output by its own token
    scores (the predictor's only gradient path), then exchange.

    ``Â_m = exchange(A ⊙ s)_m``: a substituted token receives the other
    modality's attention output already scaled by that modality's score.

    Args:
        attn_out (Tensor): (M, B, N, C).
        scores (Tensor): (M, B, N).
    """
    weighted = attn_out * scores.unsqueeze(-1)
    return exchange_tokens(weighted, scores, threshold, allocation)


def sparsity_loss(scores, reduction: str = 'sum') -> torch.Tensor:
    """l1 sparsity of the token scores (all positive, so their sum).

    Args:
        scores (Sequence[Tensor]): score tensors of the fused blocks.
        reduction (str): ``'sum'`` over blocks, modalities, images and
            tokens, as the reference (its λ then depends on crop and batch
            size); ``'mean'``, the average score, independent of both.
    """
    if reduction == 'sum':
        return sum(s.sum() for s in scores)
    if reduction == 'mean':
        total = sum(s.sum() for s in scores)
        return total / sum(s.numel() for s in scores)
    raise ValueError(f"reduction must be 'sum' or 'mean', not {reduction!r}")


def score_statistics(scores: Tensor, threshold: float) -> Dict[str, Tensor]:
    """Fraction of scores below θ (the exchanged / replaced tokens) and the
    score mean / std / min / max of a flat score tensor, detached, keyed
    ``'exchanged'``, ``'score_mean'``, ``'score_std'``, ``'score_min'``,
    ``'score_max'``. An empty tensor gives no statistics (an empty dict)."""
    values = scores.detach().flatten()
    if values.numel() == 0:
        return {}
    return {
        'exchanged': (values < threshold).float().mean(),
        'score_mean': values.mean(),
        'score_std': values.std() if values.numel() > 1 else values.new_zeros(
            ()),
        'score_min': values.min(),
        'score_max': values.max(),
    }


def fusion_statistics(scores, block_names: Sequence[str], threshold: float,
                      modality_names: Sequence[str]) -> Dict[str, Tensor]:
    """Per stage and modality, :func:`score_statistics` over the fused
    blocks of the stage, the images and the tokens, keyed
    ``'<stage>/<modality>/<statistic>'``, e.g. ``'stage1/rgb/exchanged'``.

    Args:
        scores (Sequence[Tensor]): (M, B, N) per fused block.
        block_names (Sequence[str]): ``'block<s>.<j>'`` per fused block.
    """
    by_stage: Dict[str, list] = {}
    for name, score in zip(block_names, scores):
        stage = 'stage' + name.split('.')[0][len('block'):]
        by_stage.setdefault(stage, []).append(score.detach())
    stats = {}
    for stage, stage_scores in by_stage.items():
        for m, modality in enumerate(modality_names):
            values = torch.cat([s[m].flatten() for s in stage_scores])
            stats.update({
                f'{stage}/{modality}/{name}': value
                for name, value in score_statistics(values, threshold).items()
            })
    return stats


class ScorePredictor(nn.Module):
    """Token score predictor: per modality its own LayerNorm(C) ->
    Linear(C, C) -> GELU -> Linear(C, C/2) -> GELU -> Linear(C/2, C/4) ->
    GELU -> Linear(C/4, 2) (the reference's ``PredictorLG``), evaluated for
    all modalities at once.

    Input (M*B, N, C), modality m at rows m*B..(m+1)*B -> scores (M, B, N)
    = softmax(logits)[..., 0].
    """

    def __init__(self, num_modalities: int, channels: int) -> None:
        super().__init__()
        m = num_modalities
        self.num_modalities = m
        self.norm = ModalityLayerNorm(m, channels, eps=1e-5)
        self.fc1 = ModalityLinear(m, channels, channels, shared=False)
        self.fc2 = ModalityLinear(m, channels, channels // 2, shared=False)
        self.fc3 = ModalityLinear(
            m, channels // 2, channels // 4, shared=False)
        self.fc4 = ModalityLinear(m, channels // 4, 2, shared=False)

    def forward(self, x: Tensor) -> Tensor:
        x = self.norm(x)
        x = F.gelu(self.fc1(x))
        x = F.gelu(self.fc2(x))
        x = F.gelu(self.fc3(x))
        logits = self.fc4(x)
        return scores_from_logits(logits).reshape(self.num_modalities, -1,
                                                  logits.shape[-2])
