"""The DeLiVER-style hub of GeminiFusion: M > 2 modalities reduced to two
streams, the first modality and one aggregated auxiliary stream."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor

from projects.fusion_math.geminifusion import HubScorePredictor, hub_update


@MODELS.register_module()
class ModalityStreams(BaseModule):
    """One stream per modality: what a fused backbone runs without a hub
    (S = M, nothing is aggregated)."""

    def __init__(self,
                 num_modalities: int,
                 channels: Sequence[int],
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_modalities = num_modalities
        self.num_streams = num_modalities

    def enter_stage(self, stage: int, x: Tensor,
                    hw: Tuple[int, int]) -> Tuple[Tensor, None]:
        """Patch-embedded modalities (M*B, N, C) -> the streams the stage's
        blocks run, and what :meth:`leave_stage` needs."""
        return x, None

    def leave_stage(self, stage: int, x: Tensor, carry: None) -> Tensor:
        """Normed stage output of the streams -> the modalities' tokens
        entering the next patch embedding."""
        return x


@MODELS.register_module()
class AuxiliaryHub(ModalityStreams):
    """The DeLiVER branch's way to run GeminiFusion with M > 2 modalities:
    two streams, the first modality (RGB) and one auxiliary stream.

    Every stage's patch embedding still sees all M modalities. Then each
    auxiliary modality a gets a score map ``s_a = sigmoid(Conv1x1(
    DWConv3x3(x_a)))`` (one net per auxiliary modality), is scaled to
    ``x_a·s_a + x_a``, and the auxiliary stream is the element-wise max
    over the scaled auxiliaries. After the stage the auxiliaries enter the
    next patch embedding as their scaled tokens plus the auxiliary stream's
    (normed) stage output.

    Parameters: ``score_predictors.{stage}.score_nets.{i}.{0,1}`` (the
    reference's ``extra_score_predictor``; see
    :class:`~projects.fusion_math.geminifusion.HubScorePredictor`, whose
    M-th net is unused and frozen, as in the reference).

    Args:
        num_modalities (int): M >= 3. Set by the backbone.
        channels (Sequence[int]): Channels of every stage. Set by the
            backbone.
    """

    def __init__(self,
                 num_modalities: int,
                 channels: Sequence[int],
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(num_modalities, channels, init_cfg=init_cfg)
        self.num_streams = 2
        self.score_predictors = nn.ModuleList(
            HubScorePredictor(num_modalities, c) for c in channels)

    def enter_stage(self, stage: int, x: Tensor,
                    hw: Tuple[int, int]) -> Tuple[Tensor, Tensor]:
        b = x.shape[0] // self.num_modalities
        # (M*B, N, C) -> first modality (B, N, C) + auxiliaries (M-1, B, N, C)
        aux = x[b:].reshape(-1, *x[:b].shape)
        scaled, stream = self.score_predictors[stage](aux, hw)
        return torch.cat([x[:b], stream]), scaled

    def leave_stage(self, stage: int, x: Tensor, carry: Tensor) -> Tensor:
        b = x.shape[0] // 2
        return torch.cat([x[:b], hub_update(carry, x[b:]).flatten(0, 1)])
