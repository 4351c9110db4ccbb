"""Seed-key fusion of TokenFusion for 3D detection (point <- image).

Before GroupFree3D decoder layer ``i`` every seed key ``k`` (one token per
seed point) gets a keep score ``s`` in (0, 1) and the image patch token
under the seed, projected to the key width by ``h_i`` (``h``). How the two
combine is the ``substitution`` rule:

* ``'hard'`` (the reference): ``f = h`` if ``s < θ``, else ``f = s·k``.
  A replaced seed's score lies on no computation path, so only the
  sparsity loss acts on it and pushes it further down: once replaced, a
  seed stays replaced (with the reference's λ most seeds in the image are
  replaced after one epoch of the synthetic demo);
* ``'straight_through'``: the same forward; the score of a replaced seed
  receives ``<∂L/∂f, k - h>``, the gradient it would get if ``f`` were
  ``h + s·(k - h)``, so the 3D loss can pull it back above θ;
* ``'soft_gate'``: ``f = s·k + (1 - s)·h``, no threshold; the key keeps
  the point feature in proportion to ``s``.

Every rule leaves seeds outside every image (or behind the camera) as they
are, ``f = k``: nothing could replace them, and scaling them by a score
that the sparsity loss pushes down would only shrink them. Their scores
are left out of the sparsity loss and of the statistics. The seed keeps its
own 3D positional embedding, which the decoder adds to keys and values in
every layer (the paper's residual positional alignment).

While the fusion is inactive (:attr:`SeedKeyFusion.active` False, the
warm-up of :class:`TokenFusion3DHook`) every rule gives ``f = s·k``
in the image: no seed takes anything from the image, as with θ = 0.
"""
from typing import List, Optional, Sequence

import torch
from torch import Tensor, nn

from projects.fusion_math.token_exchange import (ScorePredictor, sparsity_loss,
                                                 substitute_below_threshold)

SUBSTITUTIONS = ('hard', 'straight_through', 'soft_gate')
SPARSITY_REDUCTIONS = ('sum', 'mean')


def gather_image_tokens(patch_tokens: Tensor, view: Tensor,
                        patch: Tensor) -> Tensor:
    """The patch token under each seed.

    Args:
        patch_tokens (Tensor): (B*V, P, D) patch tokens of the B samples'
            V views, sample-major (``b * V + v``).
        view (LongTensor): (B, S) view of each seed.
        patch (LongTensor): (B, S) patch index ``row * grid_w + col``.

    Returns:
        Tensor: (B, S, D).
    """
    batch, seeds = view.shape
    num_views = patch_tokens.shape[0] // batch
    rows = view + num_views * torch.arange(batch, device=view.device)[:, None]
    return patch_tokens[rows.reshape(-1),
                        patch.reshape(-1)].reshape(batch, seeds, -1)


def substitute_seed_keys(keys: Tensor,
                         scores: Tensor,
                         image_keys: Tensor,
                         valid: Tensor,
                         threshold: float,
                         substitution: str = 'hard') -> Tensor:
    """Fuse the seed keys with the image keys (see the module docstring).

    Args:
        keys (Tensor): (B, S, C) seed keys ``k``.
        scores (Tensor): (B, S) keep scores ``s`` in (0, 1).
        image_keys (Tensor): (B, S, C) projected image tokens ``h``.
        valid (BoolTensor): (B, S) the seed projects into an image.
        threshold (float): θ (unused by ``'soft_gate'``).
        substitution (str): one of :data:`SUBSTITUTIONS`.

    Returns:
        Tensor: (B, S, C).
    """
    if substitution not in SUBSTITUTIONS:
        raise ValueError(f'substitution must be one of {SUBSTITUTIONS}, '
                         f'got {substitution!r}')
    score = scores[..., None]
    if substitution == 'soft_gate':
        fused = score * keys + (1 - score) * image_keys
    else:
        fused = substitute_below_threshold(keys * score, image_keys, scores,
                                           threshold)
        if substitution == 'straight_through':
            # zero in the forward, <dL/df, k - h> for the score backward
            replaced = (scores < threshold)[..., None]
            detour = (score - score.detach()) * (keys - image_keys)
            fused = fused + torch.where(replaced, detour,
                                        torch.zeros_like(detour))
    return torch.where(valid[..., None], fused, keys)


def visible_scores(scores: Sequence[Tensor], valid: Tensor) -> Tensor:
    """The scores of the seeds inside an image, of every layer, flat."""
    return torch.cat([s[valid] for s in scores])


def seed_sparsity_loss(scores: Sequence[Tensor],
                       valid: Tensor,
                       reduction: str = 'sum',
                       target_ratio: Optional[float] = None) -> Tensor:
    """The sparsity term on the scores of the seeds inside an image.

    Args:
        scores (Sequence[Tensor]): (B, S) per decoder layer.
        valid (BoolTensor): (B, S).
        reduction (str): ``'sum'`` (the reference: Σ s over layers, batch
            and seeds, so λ depends on batch and seed counts) or ``'mean'``
            (the mean score).
        target_ratio (float, optional): ρ; instead of an l1 term, hold the
            mean of ``1 - s`` (for the soft gate the image's share of the
            keys, for the hard rules the pressure towards replacement) at
            ρ: ``(mean(1 - s) - ρ)²``. Its minimum is at a mean score of
            ``1 - ρ``, so it cannot push every score to 0.

    Returns:
        Tensor: scalar (0 when no seed lies in an image).
    """
    if reduction not in SPARSITY_REDUCTIONS:
        raise ValueError(f'sparsity reduction must be one of '
                         f'{SPARSITY_REDUCTIONS}, got {reduction!r}')
    values = visible_scores(scores, valid)
    if values.numel() == 0:
        return sum(s.sum() for s in scores) * 0
    if target_ratio is not None:
        return ((1 - values).mean() - target_ratio)**2
    return sparsity_loss([values], reduction)


class ImageToPointProjection(nn.Sequential):
    """``h_i``: Linear(D, D) -> ReLU -> Linear(D, D) -> ReLU -> Linear(D, C),
    applied per token (the reference's ``FFN(D, D, C, 3)``)."""

    def __init__(self, image_dims: int, point_dims: int) -> None:
        super().__init__(
            nn.Linear(image_dims, image_dims), nn.ReLU(inplace=True),
            nn.Linear(image_dims, image_dims), nn.ReLU(inplace=True),
            nn.Linear(image_dims, point_dims))


class SeedKeyFusion(nn.Module):
    """Per decoder layer: a seed-key score predictor and ``h_i``.

    Parameters: ``seed_scorers.{i}`` (the reference's ``PredictorLG``; a
    config can give them their own lr with ``paramwise_cfg.custom_keys``
    ``'seed_scorers'``) and ``img_to_point.{i}``.

    Args:
        num_layers (int): decoder layers fused (one predictor and one
            projection each).
        point_dims (int): C, width of the seed keys.
        image_dims (int): D, width of the image tokens.
        threshold (float): θ; keys scoring below it are replaced. The one
            place θ is stored.
        substitution (str): ``'hard'`` (the reference),
            ``'straight_through'`` or ``'soft_gate'``.
    """

    def __init__(self,
                 num_layers: int,
                 point_dims: int,
                 image_dims: int,
                 threshold: float = 0.02,
                 substitution: str = 'hard') -> None:
        super().__init__()
        if substitution not in SUBSTITUTIONS:
            raise ValueError(f'substitution must be one of {SUBSTITUTIONS}, '
                             f'got {substitution!r}')
        self.threshold = threshold
        self.substitution = substitution
        # switched off during a fusion warm-up
        self.active = True
        self.seed_scorers = nn.ModuleList(
            ScorePredictor(1, point_dims) for _ in range(num_layers))
        # 'img' in the name puts h_i into the image parameter group of the
        # reference recipe (lr 5e-5, weight decay 1e-4).
        self.img_to_point = nn.ModuleList(
            ImageToPointProjection(image_dims, point_dims)
            for _ in range(num_layers))

    def forward(self, layer: int, keys: Tensor, image_tokens: Tensor,
                valid: Tensor) -> List[Tensor]:
        """Fuse the seed keys of one decoder layer.

        Args:
            layer (int): decoder layer index.
            keys (Tensor): (B, S, C) seed keys.
            image_tokens (Tensor): (B, S, D) patch token under each seed.
            valid (BoolTensor): (B, S).

        Returns:
            list[Tensor]: fused keys (B, S, C) and scores (B, S).
        """
        scores = self.seed_scorers[layer](keys)[0]
        image_keys = self.img_to_point[layer](image_tokens)
        if self.active:
            fused = substitute_seed_keys(keys, scores, image_keys, valid,
                                         self.threshold, self.substitution)
        else:
            # θ = 0 for every rule; h_i stays in the graph with no effect
            fused = substitute_seed_keys(keys, scores, image_keys, valid, 0.0,
                                         'hard')
        return [fused, scores]

    def extra_repr(self) -> str:
        return (f'threshold={self.threshold}, '
                f'substitution={self.substitution!r}, active={self.active}')
