"""Token-reduction consistency training: the loss terms on tensors, and
one training step of a small merging ViT classifier."""
import pytest
import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import projects.mctf  # noqa: F401
from projects.mctf.models.classifiers import (consistency_loss,
                                              true_class_probability)

TINY = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)


def test_consistency_loss_on_confident_samples_only():
    student = torch.tensor([[1., 2.], [0., 0.], [3., 3.]], requires_grad=True)
    teacher = torch.tensor([[1., 0.], [1., 1.], [3., 1.]], requires_grad=True)
    confident = torch.tensor([True, False, True])
    loss = consistency_loss(student, teacher, confident)
    # samples 0 and 2: mean over channels of (t - s)^2 = 2 and 2
    assert loss.item() == pytest.approx(2.)
    loss.backward()
    assert teacher.grad is None  # the teacher is a target
    assert student.grad[1].eq(0).all() and student.grad[0, 1] != 0
    none = consistency_loss(student, teacher, torch.zeros(3, dtype=bool))
    assert none.item() == 0 and none.requires_grad


def test_true_class_probability_hard_and_mixed_targets():
    score = torch.log(torch.tensor([[.7, .2, .1], [.1, .3, .6]]))
    hard = [DataSample().set_gt_label(0), DataSample().set_gt_label(1)]
    torch.testing.assert_close(
        true_class_probability(score, hard), torch.tensor([.7, .3]))
    mixed = [
        DataSample().set_gt_score(torch.tensor([.6, .4, 0.])),
        DataSample().set_gt_score(torch.tensor([0., .5, .5]))
    ]
    torch.testing.assert_close(
        true_class_probability(score, mixed), torch.tensor([.9, .9]))


def build(**kwargs):
    return MODELS.build(
        dict(
            type='TokenReductionConsistencyClassifier',
            backbone=dict(
                type='MCTFVisionTransformer',
                arch=TINY,
                img_size=128,
                r=8,
                merge_layers=[1, 2, 3]),
            head=dict(
                type='VisionTransformerClsHead', num_classes=5,
                in_channels=32),
            **kwargs))


def test_one_training_step_runs_student_and_teacher(monkeypatch):
    torch.manual_seed(0)
    model = build(r_teacher_max=4, consistency_weight=3., confidence=0.)
    seen = []
    forward = model.backbone.forward

    def record(x, r=None):
        out = forward(x, r=r)
        seen.append((r, model.backbone.last_trace.tokens[-1]))
        return out

    monkeypatch.setattr(model.backbone, 'forward', record)
    images = torch.randn(3, 3, 128, 128)
    samples = [DataSample().set_gt_label(i) for i in (0, 3, 4)]
    model.train()
    losses = model.loss(images, samples)
    assert set(losses) >= {'student_loss', 'teacher_loss', 'consistency_loss'}
    # 65 tokens; the student removes 8 in each of 3 layers
    (student_r, student_tokens), (teacher_r, teacher_tokens) = seen
    assert student_r is None and student_tokens == 41
    assert teacher_r in range(4) and teacher_tokens == 65 - 3 * teacher_r
    assert losses['consistency_loss'] > 0
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert model.backbone.layers[0].attn.qkv.weight.grad.abs().sum() > 0


def test_teacher_r_draws_and_no_teacher():
    model = build(r_teacher_max=8)
    torch.manual_seed(0)
    draws = {model.sample_teacher_r() for _ in range(200)}
    assert draws == set(range(8))
    fractions = build(r_teacher_max=0.3)
    values = {fractions.sample_teacher_r() for _ in range(300)}
    assert min(values) == 0 and max(values) == pytest.approx(0.29)
    student_only = build(r_teacher_max=0)
    student_only.train()
    losses = student_only.loss(
        torch.randn(2, 3, 128, 128),
        [DataSample().set_gt_label(1),
         DataSample().set_gt_label(2)])
    assert 'teacher_loss' not in losses and 'consistency_loss' not in losses


def test_bad_settings():
    with pytest.raises(ValueError, match='confidence'):
        build(confidence=1.5)
    with pytest.raises(ValueError, match='r_teacher_max must be'):
        build(r_teacher_max=2.5)
    with pytest.raises(TypeError, match='token-merging backbone'):
        MODELS.build(
            dict(
                type='TokenReductionConsistencyClassifier',
                backbone=dict(type='VisionTransformer', arch='deit-tiny'),
                head=dict(
                    type='VisionTransformerClsHead',
                    num_classes=5,
                    in_channels=192)))
