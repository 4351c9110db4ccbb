"""MCTF's token-reduction consistency training as an mmpretrain
classifier: every training step runs the merging backbone twice on the
same images, a student at the configured r and a teacher at a smaller r
drawn for the step, and ties the student's class feature to the
teacher's."""
from typing import List, Union

import torch
import torch.nn.functional as F
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from projects.fusion_math.token_merging import check_r


def consistency_loss(student: torch.Tensor, teacher: torch.Tensor,
                     confident: torch.Tensor) -> torch.Tensor:
    """Mean over the confident samples of the channel-mean squared
    difference of the class features (B, D), the teacher detached; 0 when
    no sample is confident."""
    per_sample = ((teacher.detach() - student)**2).mean(dim=1)
    if not confident.any():
        return per_sample.sum() * 0.
    return per_sample[confident].mean()


def true_class_probability(cls_score: torch.Tensor,
                           data_samples: List[DataSample]) -> torch.Tensor:
    """(B,) the softmax probability of each sample's class; with soft
    targets (mixup / cutmix) the summed probability of the classes the
    target mixes."""
    probs = F.softmax(cls_score.detach(), dim=1)
    if 'gt_score' in data_samples[0]:
        mixed = torch.stack([s.gt_score for s in data_samples]) > 0
        return (probs * mixed).sum(dim=1)
    labels = torch.cat([s.gt_label for s in data_samples])
    return probs.gather(1, labels[:, None])[:, 0]


@MODELS.register_module()
class TokenReductionConsistencyClassifier(ImageClassifier):
    """An ``ImageClassifier`` over an ``MCTFVisionTransformer`` trained
    with MCTF's token-reduction consistency.

    Training loss (``loss``)::

        student_weight * CE(student) + teacher_weight * CE(teacher)
        + consistency_weight * mean over {n: p_n > confidence} of
          mean_d (z_teacher[n, d] - z_student[n, d]) ** 2

    The student runs at the backbone's ``r``; the teacher at r_t drawn
    uniformly from {0, ..., r_teacher_max - 1} for the whole step (a
    fraction in steps of 0.01 below ``r_teacher_max`` when that is < 1);
    z is the class feature after the final norm (the teacher's detached);
    p_n is the student's probability of the true class. Prediction runs
    the student alone.

    Args:
        r_teacher_max (int | float): Upper end (excluded) of the teacher's
            r. 0 disables the teacher pass and the consistency term.
            Defaults to 8 (the reference's fine-tuning).
        student_weight, teacher_weight (float): Weights of the two
            cross-entropies. Default 1.
        consistency_weight (float): λ (the reference: 1 for DeiT-T, 3 for
            DeiT-S). Defaults to 1.
        confidence (float): β. Defaults to 0.4.
        **kwargs: ``ImageClassifier`` arguments; the backbone must accept
            ``r`` in its forward (``MCTFVisionTransformer``).
    """

    def __init__(self,
                 *args,
                 r_teacher_max: Union[int, float] = 8,
                 student_weight: float = 1.,
                 teacher_weight: float = 1.,
                 consistency_weight: float = 1.,
                 confidence: float = 0.4,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        check_r(r_teacher_max, 'r_teacher_max')
        if not 0 <= confidence <= 1:
            raise ValueError(f'confidence (β) must be in [0, 1], got '
                             f'{confidence}')
        if not hasattr(self.backbone, 'token_counts'):
            raise TypeError(
                f'{type(self).__name__} needs a token-merging backbone '
                f'(MCTFVisionTransformer), got {type(self.backbone).__name__}')
        self.r_teacher_max = r_teacher_max
        self.student_weight = student_weight
        self.teacher_weight = teacher_weight
        self.consistency_weight = consistency_weight
        self.confidence = confidence

    def sample_teacher_r(self) -> Union[int, float]:
        """The teacher's r for one step."""
        if self.r_teacher_max >= 1:
            return int(torch.randint(0, int(self.r_teacher_max), ()))
        steps = int(round(self.r_teacher_max * 100))
        return int(torch.randint(0, max(steps, 1), ())) / 100

    def _features(self, inputs: torch.Tensor, r=None):
        feats = self.backbone(inputs, r=r)
        return self.neck(feats) if self.with_neck else feats

    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> dict:
        student = self._features(inputs)
        student_score = self.head(student)
        losses = {
            f'student_{k}': v
            for k, v in self.head._get_loss(student_score,
                                            data_samples).items()
        }
        losses['student_loss'] = self.student_weight * losses['student_loss']
        if not self.r_teacher_max:
            return losses
        teacher = self._features(inputs, r=self.sample_teacher_r())
        teacher_losses = self.head._get_loss(self.head(teacher), data_samples)
        losses['teacher_loss'] = self.teacher_weight * teacher_losses['loss']
        confident = true_class_probability(student_score,
                                           data_samples) > self.confidence
        losses['consistency_loss'] = self.consistency_weight * \
            consistency_loss(student[-1], teacher[-1], confident)
        return losses
