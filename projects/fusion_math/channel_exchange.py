"""Channel exchange driven by LayerNorm scale factors (CEN, Wang et al.,
NeurIPS'20), as the TokenFusion supplementary (Table 9) applies it to the
per-modality LayerNorms of the fused MiT.

Every modality m has its own LayerNorm scale factors gamma_m (C, ). After
the norm, channel c of modality m is kept where |gamma_m,c| >= threshold
and replaced otherwise by the same channel of the other modality (M = 2)
or by the mean of the other modalities (M > 2, as CEN):

    y_m[..., c] = x_m[..., c]                       if |gamma_m,c| >= θ
                = mean_{k != m} x_k[..., c]          otherwise.

An l1 term lambda_2 * sum_m,c |gamma_m,c| over the exchanging norms pushes
scale factors towards 0, i.e. makes channels exchangeable. The exchange is
hard: gamma reaches the loss through the kept channels (and the l1 term),
exactly as in CEN.
"""
from typing import Dict, Sequence

import torch
from torch import Tensor


def exchanged_channels(gammas: Tensor, threshold: float) -> Tensor:
    """(M, C) scale factors -> bool (M, C), True where modality m takes
    channel c from the other modalities (|gamma| < θ)."""
    return gammas.abs() < threshold


def channel_exchange(x: Tensor, gammas: Tensor, threshold: float) -> Tensor:
    """Exchange the channels whose scale factor is small.

    Args:
        x (Tensor): (M, ..., C) modality-stacked features, e.g. the
            LayerNorm output (M, B, N, C).
        gammas (Tensor): (M, C) scale factors of modality m's norm.
        threshold (float): θ; a channel with |gamma_m,c| < θ is replaced.

    Returns:
        Tensor: (M, ..., C). For M = 2 the replacement is the other
        modality's channel, for M > 2 the mean over the other modalities.
        A single modality is returned unchanged.
    """
    m = x.shape[0]
    if gammas.shape != (m, x.shape[-1]):
        raise ValueError(f'gammas of shape {tuple(gammas.shape)} do not fit '
                         f'features of shape {tuple(x.shape)}')
    if m < 2:
        return x
    if m == 2:
        others = x.flip(0)
    else:
        others = (x.sum(0, keepdim=True) - x) / (m - 1)
    swap = exchanged_channels(gammas, threshold).detach()
    swap = swap.reshape(m, *(1, ) * (x.ndim - 2), x.shape[-1])
    return torch.where(swap, others, x)


def channel_sparsity_loss(gammas: Sequence[Tensor]) -> Tensor:
    """CEN's l1 term: sum of |gamma| over every exchanging norm, modality
    and channel (to be multiplied by lambda_2)."""
    if not len(gammas):
        raise ValueError('no scale factors to regularise')
    return sum(g.abs().sum() for g in gammas)


def channel_exchange_statistics(
        gammas: Sequence[Tensor], threshold: float,
        modality_names: Sequence[str]) -> Dict[str, Tensor]:
    """Per modality, the fraction of exchanged channels over all exchanging
    norms and the mean |gamma| (detached, keyed
    ``'channels/<modality>/exchanged'`` and ``'.../gamma_abs_mean'``)."""
    stacked = torch.cat([g.detach() for g in gammas], dim=1)  # (M, sum C)
    swap = exchanged_channels(stacked, threshold).float().mean(1)
    mean_abs = stacked.abs().mean(1)
    stats = {}
    for i, name in enumerate(modality_names):
        stats[f'channels/{name}/exchanged'] = swap[i]
        stats[f'channels/{name}/gamma_abs_mean'] = mean_abs[i]
    return stats
