"""The multi-stream segmentor: per-stream losses, the learned ensemble,
fusion losses and statistics from the backbone's layers, predictions."""
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmseg.registry import MODELS

from ..utils import REPO_ROOT, seg_samples


def build_segmentor(**overrides):
    cfg = Config.fromfile(
        f'{REPO_ROOT}/configs/tokenfusion/'
        'tokenfusion_mit-tiny_1xb8-1k_synthetic-rgbd-64x64.py')
    cfg.model.update(overrides)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def test_segmentor_losses_and_ensemble_gradients():
    model = build_segmentor()
    inputs = torch.randn(2, 6, 64, 64)
    losses = model.loss(inputs, seg_samples(2))
    assert {
        'decode.rgb.loss_ce', 'decode.depth.loss_ce',
        'decode.ensemble.loss_ce', 'loss_sparsity', 'decode.rgb.acc_seg'
    } <= set(losses)
    assert set(model.fusion_stats) >= {
        'stage1/rgb/exchanged', 'stage4/depth/score_mean'
    }
    # the ensemble loss reaches alpha only
    losses['decode.ensemble.loss_ce'].backward()
    assert model.alpha.grad is not None and model.alpha.grad.abs().sum() > 0
    assert all(p.grad is None or not p.grad.any()
               for p in model.backbone.parameters())
    frozen = build_segmentor(train_alpha=False)
    assert not frozen.alpha.requires_grad


def test_segmentor_predicts_from_the_ensemble(tmp_path):
    model = build_segmentor().eval()
    with torch.no_grad():
        model.alpha.copy_(torch.tensor([2.0, -1.0]))
        inputs = torch.randn(2, 6, 64, 64)
        results = model.predict(inputs, seg_samples(2))
        logits = model.stream_logits(inputs)
    weights = torch.softmax(torch.tensor([2.0, -1.0]), 0)
    ensemble = F.interpolate(
        weights[0] * logits[0] + weights[1] * logits[1],
        size=(64, 64),
        mode='bilinear',
        align_corners=False)
    for i, result in enumerate(results):
        torch.testing.assert_close(
            result.seg_logits.data, ensemble[i], atol=1e-5, rtol=1e-5)
        assert torch.equal(result.pred_sem_seg.data[0], ensemble[i].argmax(0))
        for m, name in enumerate(('rgb', 'depth')):
            single = F.interpolate(
                logits[m, i:i + 1], size=(64, 64), mode='bilinear')[0]
            assert torch.equal(
                result.get(f'pred_sem_seg_{name}').data[0], single.argmax(0))


def test_segmentor_slide_inference():
    model = build_segmentor(
        test_cfg=dict(mode='slide', crop_size=(48, 48), stride=(32, 32)))
    model.eval()
    with torch.no_grad():
        results = model.predict(torch.randn(1, 6, 80, 96), seg_samples(1, 80))
    assert results[0].pred_sem_seg.data.shape == (1, 80, 80)
    assert results[0].pred_sem_seg_depth.data.shape == (1, 80, 80)
