"""Fine-tuning a fused backbone that merges tokens with a token-reduction
consistency (MCTF's training objective, carried over to segmentation):
every training step runs the backbone twice on the same images, a student
at the configured merge ratios and a teacher that merges less, and ties the
student's logits to the teacher's where the student is confident."""
from typing import List

import torch
import torch.nn.functional as F
from mmseg.models.utils import resize
from mmseg.registry import MODELS

from .multi_stream_encoder_decoder import MultiStreamEncoderDecoder


def confident_pixel_consistency(student: torch.Tensor, teacher: torch.Tensor,
                                labels: torch.Tensor, confidence: float,
                                ignore_index: int) -> torch.Tensor:
    """Mean over the confident pixels of the class-mean squared difference
    of two logit maps (B, K, H, W), the teacher detached.

    A pixel is confident where its label is not ``ignore_index`` and the
    student's softmax probability of that label exceeds ``confidence``
    (β). 0 (with a gradient path) when no pixel is.
    """
    per_pixel = ((teacher.detach() - student)**2).mean(dim=1)  # (B, H, W)
    valid = labels != ignore_index
    probs = F.softmax(student.detach(), dim=1)
    label_prob = probs.gather(1, labels.clamp(0, probs.shape[1] - 1)[:, None])
    confident = valid & (label_prob[:, 0] > confidence)
    if not confident.any():
        return per_pixel.sum() * 0.
    return per_pixel[confident].mean()


@MODELS.register_module()
class MergeConsistencyEncoderDecoder(MultiStreamEncoderDecoder):
    """A :class:`MultiStreamEncoderDecoder` whose backbone merges tokens
    (``FusedMiT(token_merge=...)``), trained with a token-reduction
    consistency.

    Training loss::

        L_student (the segmentor's losses at the configured ratios)
        + teacher_weight * sum_m CE(teacher logits of stream m)
        + consistency_weight * sum_m mean over confident pixels of
          mean_k (y_teacher[m] - y_student[m]) ** 2

    The teacher merges ``u`` x the configured ratios, u drawn uniformly
    from [0, ``teacher_fraction_max``) for the step (0, the default: an
    unmerged teacher); logits are compared at the label resolution, the
    teacher's detached. A pixel is confident where the student's
    probability of its label exceeds β. Prediction runs the student alone.

    Args:
        teacher_fraction_max (float): See above, in [0, 1]. Defaults to 0.
        teacher_weight (float): Weight of the teacher's cross-entropies.
            Defaults to 1.
        consistency_weight (float): λ. Defaults to 3 (MCTF's DeiT-S).
        confidence (float): β. Defaults to 0.4.
        **kwargs: :class:`MultiStreamEncoderDecoder` arguments.
    """

    def __init__(self,
                 teacher_fraction_max: float = 0.,
                 teacher_weight: float = 1.,
                 consistency_weight: float = 3.,
                 confidence: float = 0.4,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if not hasattr(self.backbone, 'scaled_token_merge'):
            raise TypeError(
                f'{type(self).__name__} needs a backbone that merges tokens '
                f'(FusedMiT with token_merge), got '
                f'{type(self.backbone).__name__}')
        if not 0 <= teacher_fraction_max <= 1:
            raise ValueError('teacher_fraction_max must be in [0, 1], got '
                             f'{teacher_fraction_max}')
        if not 0 <= confidence <= 1:
            raise ValueError(f'confidence (β) must be in [0, 1], got '
                             f'{confidence}')
        self.teacher_fraction_max = teacher_fraction_max
        self.teacher_weight = teacher_weight
        self.consistency_weight = consistency_weight
        self.confidence = confidence

    def teacher_fraction(self) -> float:
        """u for one step."""
        if not self.teacher_fraction_max:
            return 0.
        return float(torch.rand(())) * self.teacher_fraction_max

    def loss(self, inputs: torch.Tensor, data_samples) -> dict:
        if not self.backbone.merges_tokens:
            raise ValueError(
                f'{type(self).__name__}: the backbone merges no tokens; set '
                'model.backbone.token_merge (a stage with a ratio above 0)')
        student = self.stream_logits(inputs)
        losses = self.stream_losses(student, data_samples)
        with self.backbone.scaled_token_merge(self.teacher_fraction()):
            teacher = self.stream_logits(inputs)
        labels = torch.stack([s.gt_sem_seg.data[0]
                              for s in data_samples]).long()
        size = labels.shape[-2:]
        ignore = self.decode_head.ignore_index
        for name, s_logit, t_logit in zip(self.stream_names, student, teacher):
            teacher_ce = self.decode_head.loss_by_feat(t_logit, data_samples)
            losses[f'decode.teacher.{name}.loss_ce'] = \
                self.teacher_weight * teacher_ce['loss_ce']
            losses[f'decode.{name}.loss_consistency'] = \
                self.consistency_weight * confident_pixel_consistency(
                    self._upsampled(s_logit, size),
                    self._upsampled(t_logit, size), labels,
                    self.confidence, ignore)
        return losses

    def _upsampled(self, logits: torch.Tensor, size: List[int]):
        return resize(
            logits,
            size=size,
            mode='bilinear',
            align_corners=self.align_corners)
