"""The merge-consistency segmentor: the equation of its consistency term,
a teacher pass that merges less, and its configs."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmseg.registry import MODELS

from projects.multimodal_seg.models.segmentors import (
    confident_pixel_consistency, confident_pixels)
from ..utils import REPO_ROOT, seg_samples

FINE_TUNE = (f'{REPO_ROOT}/configs/geminifusion/'
             'geminifusion-merge_mit-tiny_1xb8-200-ft_synthetic-rgbd-64x64.py')


def test_confident_pixels_and_their_consistency():
    logits = torch.zeros(1, 2, 1, 3)
    logits[0, 0, 0] = torch.tensor([3., 0., 0.])  # p(class 0) 0.95, 0.5
    labels = torch.tensor([[[0, 0, 255]]])
    confident = confident_pixels(logits, labels, 0.4, 255)
    assert confident.tolist() == [[[True, True, False]]]
    assert confident_pixels(logits, labels, 0.6, 255).tolist() == \
        [[[True, False, False]]]
    # labels at twice the logits' size are nearest-resized
    big = labels.repeat_interleave(2, 1).repeat_interleave(2, 2)
    assert torch.equal(confident_pixels(logits, big, 0.4, 255), confident)
    student = torch.zeros(1, 2, 1, 3, requires_grad=True)
    teacher = torch.zeros(1, 2, 1, 3)
    teacher[0, :, 0, 0] = torch.tensor([2., 4.])
    teacher[0, :, 0, 1] = torch.tensor([1., 1.])
    teacher[0, :, 0, 2] = torch.tensor([9., 9.])  # not confident
    value = confident_pixel_consistency(student, teacher, confident)
    assert torch.isclose(value, torch.tensor(((4 + 16) / 2 + 1) / 2))
    value.backward()
    assert student.grad[0, :, 0, 2].abs().sum() == 0
    none = confident_pixel_consistency(student, teacher,
                                       torch.zeros_like(confident))
    assert float(none) == 0 and none.requires_grad


def build(cfg_model):
    model = MODELS.build(cfg_model)
    model.init_weights()
    return model


def test_teacher_runs_unmerged_and_student_merged():
    cfg = Config.fromfile(FINE_TUNE).model
    model = build(copy.deepcopy(cfg))
    calls = []
    model.backbone.register_forward_pre_hook(
        lambda backbone, args: calls.append(
            [m.ratio for m in backbone.token_merge if m]))
    torch.manual_seed(0)
    losses = model.loss(torch.randn(2, 6, 64, 64), seg_samples(2))
    assert calls == [[0.5, 0.5, 0.5], [0., 0., 0.]]  # student, teacher
    for name in ('rgb', 'depth'):
        assert f'decode.teacher.{name}.loss_ce' in losses
        assert f'decode.{name}.loss_consistency' in losses
    assert 'decode.ensemble.loss_ce' in losses
    assert [m.ratio for m in model.backbone.token_merge if m] == [0.5] * 3
    # a teacher fraction in (0, 1): ratios scaled for the step only
    model.teacher_fraction_max = 0.5
    calls.clear()
    model.loss(torch.randn(2, 6, 64, 64), seg_samples(2))
    assert all(0 <= r < 0.25 for r in calls[1])
    assert calls[0] == [0.5] * 3


def test_configuration_errors():
    cfg = Config.fromfile(FINE_TUNE).model
    bad = copy.deepcopy(cfg)
    bad['backbone']['token_merge'] = None
    model = build(bad)
    with pytest.raises(ValueError, match='token_merge'):
        model.loss(torch.randn(1, 6, 64, 64), seg_samples(1))
    bad = copy.deepcopy(cfg)
    bad['confidence'] = 2
    with pytest.raises(ValueError, match='confidence'):
        build(bad)
