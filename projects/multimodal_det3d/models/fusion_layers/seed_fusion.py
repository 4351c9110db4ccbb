"""Seed-key fusion of TokenFusion for 3D detection (point <- image).

Before GroupFree3D decoder layer ``i`` every seed key (one token per seed
point) is scored; a key whose score is below ``threshold`` is replaced by
``h_i`` of the image patch token the seed projects into, the others are
multiplied by their score (the score predictor's gradient path). The seed
keeps its own 3D positional embedding, which the decoder adds to keys and
values in every layer (the paper's residual positional alignment). Seeds
outside every image, or behind the camera, are never replaced.
"""
from typing import List

import torch
from torch import Tensor, nn

from projects.fusion_math.token_exchange import (ScorePredictor,
                                                 substitute_below_threshold)


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


def substitute_seed_keys(keys: Tensor, scores: Tensor, image_keys: Tensor,
                         valid: Tensor, threshold: float) -> Tensor:
    """``out[n] = image_keys[n]`` if ``scores[n] < threshold`` and the seed
    lies in an image, else ``keys[n] * scores[n]``.

    Args:
        keys (Tensor): (B, S, C) seed keys.
        scores (Tensor): (B, S) keep scores in (0, 1).
        image_keys (Tensor): (B, S, C) projected image tokens.
        valid (BoolTensor): (B, S) the seed projects into an image.
        threshold (float): θ.

    Returns:
        Tensor: (B, S, C).
    """
    return substitute_below_threshold(keys * scores[..., None], image_keys,
                                      scores, threshold, valid)


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

    Args:
        num_layers (int): decoder layers fused (one predictor and one
            projection each).
        point_dims (int): C, width of the seed keys.
        image_dims (int): D, width of the image tokens.
        threshold (float): θ; keys scoring below it are replaced.
    """

    def __init__(self,
                 num_layers: int,
                 point_dims: int,
                 image_dims: int,
                 threshold: float = 0.02) -> None:
        super().__init__()
        self.threshold = threshold
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
        fused = substitute_seed_keys(keys, scores, image_keys, valid,
                                     self.threshold)
        return [fused, scores]
