"""Fine-tuning a fused backbone that merges tokens with a token-reduction
consistency (MCTF's training objective, carried over to segmentation):
every training step runs the backbone twice on the same images, a student
at the configured merge ratios and a teacher that merges less, and ties the
student's decoder features to the teacher's where the student is
confident."""
from typing import Tuple

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

from .multi_stream_encoder_decoder import MultiStreamEncoderDecoder


def confident_pixels(logits: torch.Tensor, labels: torch.Tensor,
                     confidence: float, ignore_index: int) -> torch.Tensor:
    """(B, h, w) bool at the size of ``logits`` (B, K, h, w): the label
    (``labels`` (B, H, W), nearest-resized) is not ``ignore_index`` and its
    softmax probability exceeds ``confidence`` (β)."""
    if labels.shape[-2:] != logits.shape[-2:]:
        labels = F.interpolate(
            labels[:, None].float(), size=logits.shape[-2:],
            mode='nearest')[:, 0].long()
    probs = F.softmax(logits.detach(), dim=1)
    valid = labels != ignore_index
    label_prob = probs.gather(1, labels.clamp(0, probs.shape[1] - 1)[:, None])
    return valid & (label_prob[:, 0] > confidence)


def confident_pixel_consistency(student: torch.Tensor, teacher: torch.Tensor,
                                confident: torch.Tensor) -> torch.Tensor:
    """Mean over the ``confident`` pixels (B, h, w) of the channel-mean
    squared difference of two feature maps (B, E, h, w), the teacher
    detached; 0 (with a gradient path) when no pixel is confident."""
    per_pixel = ((teacher.detach() - student)**2).mean(dim=1)
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
          mean_e (F_teacher[m] - F_student[m]) ** 2

    F are the decode head's features before its classifier
    (``decode_head.features``), as MCTF ties the class features before the
    classifier; the teacher's are detached. A pixel is confident where the
    student's probability of its label (nearest-resized to the feature
    grid) exceeds β. The teacher merges ``u`` x the configured ratios, u
    drawn uniformly from [0, ``teacher_fraction_max``) for the step (0, the
    default: an unmerged teacher). Prediction runs the student alone.

    Args:
        teacher_fraction_max (float): See above, in [0, 1]. Defaults to 0.
        teacher_weight (float): Weight of the teacher's cross-entropies.
            Defaults to 1.
        consistency_weight (float): λ. Defaults to 3 (MCTF's DeiT-S).
        confidence (float): β. Defaults to 0.4.
        **kwargs: :class:`MultiStreamEncoderDecoder` arguments; the decode
            head must offer ``features`` and ``cls_seg``
            (``SegFormerMLPHead``).
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
        if not hasattr(self.decode_head, 'features'):
            raise TypeError(
                f'{type(self).__name__} ties the decode head\'s features '
                'before its classifier: the head needs a features() method '
                f'(SegFormerMLPHead), got {type(self.decode_head).__name__}')
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

    def stream_features(
            self, inputs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Head features (S, B, E, h, w) and logits (S, B, K, h, w)."""
        feats = self.decode_head.features(self.extract_feat(inputs))
        logits = self.decode_head.cls_seg(feats)
        return (feats.reshape(self.num_streams, -1, *feats.shape[1:]),
                logits.reshape(self.num_streams, -1, *logits.shape[1:]))

    def loss(self, inputs: torch.Tensor, data_samples) -> dict:
        if not self.backbone.merges_tokens:
            raise ValueError(
                f'{type(self).__name__}: the backbone merges no tokens; set '
                'model.backbone.token_merge (a stage with a ratio above 0)')
        student, logits = self.stream_features(inputs)
        losses = self.stream_losses(logits, data_samples)
        with self.backbone.scaled_token_merge(self.teacher_fraction()):
            teacher, teacher_logits = self.stream_features(inputs)
        labels = torch.stack([s.gt_sem_seg.data[0]
                              for s in data_samples]).long()
        ignore = self.decode_head.ignore_index
        for m, name in enumerate(self.stream_names):
            teacher_ce = self.decode_head.loss_by_feat(teacher_logits[m],
                                                       data_samples)
            losses[f'decode.teacher.{name}.loss_ce'] = \
                self.teacher_weight * teacher_ce['loss_ce']
            confident = confident_pixels(logits[m], labels, self.confidence,
                                         ignore)
            losses[f'decode.{name}.loss_consistency'] = \
                self.consistency_weight * confident_pixel_consistency(
                    student[m], teacher[m], confident)
        return losses
