"""Seed-key fusion: the equations on tensors, the GroupFree3D head's fusion
hook and its rotated-box target fix."""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet3d.registry import DATASETS, MODELS
from mmdet3d.structures import DepthInstance3DBoxes
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope

import projects.multimodal_det3d  # noqa: F401  (registers, CPU point ops)
from projects.multimodal_det3d.models.dense_heads.groupfree3d_head import \
    with_box_membership
from projects.multimodal_det3d.models.fusion_layers.seed_fusion import (
    SeedKeyFusion, gather_image_tokens)
from ..utils import REPO_ROOT


def test_gather_image_tokens_indexes_sample_major_views():
    batch, views, patches, dims = 2, 3, 5, 4
    tokens = torch.arange(batch * views * patches * dims, dtype=torch.float)
    tokens = tokens.reshape(batch * views, patches, dims)
    view = torch.tensor([[0, 2, 1], [1, 0, 2]])
    patch = torch.tensor([[4, 0, 3], [2, 2, 1]])
    out = gather_image_tokens(tokens, view, patch)
    for b in range(batch):
        for s in range(3):
            row = b * views + int(view[b, s])
            assert torch.equal(out[b, s], tokens[row, patch[b, s]])


def test_seed_key_fusion_scores_and_gradients():
    torch.manual_seed(0)
    fusion = SeedKeyFusion(num_layers=2, point_dims=16, image_dims=8)
    keys = torch.randn(2, 10, 16, requires_grad=True)
    image_tokens = torch.randn(2, 10, 8)
    valid = torch.ones(2, 10, dtype=torch.bool)
    fused, scores = fusion(1, keys, image_tokens, valid)
    assert fused.shape == (2, 10, 16) and scores.shape == (2, 10)
    assert ((scores > 0) & (scores < 1)).all()
    # A score below θ everywhere replaces every key by h_1(image token).
    fusion.threshold = 1.0
    fused_all, _ = fusion(1, keys, image_tokens, valid)
    assert torch.allclose(fused_all, fusion.img_to_point[1](image_tokens))
    # Kept keys carry the score: the predictor's only gradient path.
    fusion.threshold = 0.0
    fused_none, scores = fusion(1, keys, image_tokens, valid)
    assert torch.allclose(fused_none, keys * scores[..., None])
    fused_none.sum().backward()
    assert fusion.seed_scorers[1].fc4.weight.grad.abs().sum() > 0
    assert fusion.seed_scorers[0].fc4.weight.grad is None


def test_box_membership_answers_per_box_columns():
    boxes = DepthInstance3DBoxes(
        torch.tensor([[0., 0., 0., 2., 2., 2., 0.],
                      [0.5, 0., 0., 2., 2., 2., 0.3]]),
        origin=(0.5, 0.5, 0.5))
    points = torch.tensor([[0., 0., 0.], [1.3, 0., 0.], [5., 5., 5.]])
    fixed = with_box_membership(boxes)
    membership = fixed.points_in_boxes_part(points)
    assert membership.shape == (3, 2)
    assert torch.equal(membership, boxes.points_in_boxes_all(points))
    assert membership[0].tolist() == [1, 1]
    assert membership[1].tolist() == [0, 1]
    assert membership[2].tolist() == [0, 0]
    # mmdet3d's own answer is one box index per point: the head's target
    # code reads column i of it.
    assert boxes.points_in_boxes_part(points).shape == (3, )
    # The padded copy the target code makes keeps the fixed behaviour.
    padded = fixed.new_box(torch.cat([fixed.tensor, fixed.tensor[:1]]))
    assert padded.points_in_boxes_part(points).shape == (3, 3)


def test_unknown_fusion_key_is_rejected(tiny_fusion_cfg):
    tiny_fusion_cfg['fusion']['treshold'] = 0.1
    with pytest.raises(KeyError, match='treshold'):
        build_detector(tiny_fusion_cfg)


# ------------------------------------------------------------ the detector
SYNTHETIC_FUSION = osp.join(
    REPO_ROOT, 'configs/tokenfusion3d/'
    'tokenfusion3d_groupfree3d-tiny_vit-4x64_1xb8-24e_synthetic-3d.py')


@pytest.fixture
def tiny_fusion_cfg():
    cfg = Config.fromfile(SYNTHETIC_FUSION)
    return copy.deepcopy(cfg.model)


@pytest.fixture(scope='module')
def synthetic_batch(tmp_path_factory):
    """Two packed training samples of the synthetic set (fusion pipeline)."""
    cfg = Config.fromfile(SYNTHETIC_FUSION)
    root = str(tmp_path_factory.mktemp('synthetic_indoor'))
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        dataset_cfg = cfg.train_dataloader.dataset
        dataset_cfg.update(data_root=root, num_train=2, num_val=1)
        dataset = DATASETS.build(dataset_cfg)
        torch.manual_seed(0)
        np.random.seed(0)
        return pseudo_collate([dataset[0], dataset[1]])


def build_detector(cfg):
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        torch.manual_seed(0)
        model = MODELS.build(cfg)
    model.init_weights()
    return model


def run(model, batch, mode):
    data = model.data_preprocessor(copy.deepcopy(batch), training=True)
    return model(**data, mode=mode)


def test_detector_losses_and_gradient_paths(tiny_fusion_cfg, synthetic_batch):
    tiny_fusion_cfg['fusion']['detach_image'] = True
    model = build_detector(tiny_fusion_cfg)
    model.train()
    losses = run(model, synthetic_batch, 'loss')
    for name in ('sampling_objectness_loss', 's1.center_loss', 'img_loss_cls',
                 'img_loss_bbox', 'img_loss_iou', 'loss_sparsity'):
        assert name in losses and torch.isfinite(losses[name]).all(), name
    stats = model.fusion_stats
    for name in ('visible', 'decoder0/replaced', 'decoder1/score_mean',
                 'decoder1/score_std', 'decoder0/score_min',
                 'decoder0/score_max'):
        assert name in stats and torch.isfinite(stats[name]), name
    assert 0.5 < float(stats['visible']) < 1  # most seeds lie in the image
    # λ Σ s over both decoder layers and every seed inside the image.
    calls = []
    hook = model.seed_fusion.register_forward_hook(
        lambda module, args, out: calls.append((args[3], out[1])))
    model.zero_grad()
    losses = run(model, synthetic_batch, 'loss')
    hook.remove()
    assert len(calls) == 2
    expected = 1e-3 * sum(scores[valid].sum() for valid, scores in calls)
    assert torch.allclose(losses['loss_sparsity'], expected)
    # the statistics count the seeds inside the image only
    valid, scores = calls[0]
    assert float(model.fusion_stats['decoder0/replaced']) == pytest.approx(
        float((scores[valid] < 0.02).float().mean()))

    # Detached image tokens: the 3D loss alone does not reach the ViT.
    total_3d = sum(v for k, v in losses.items()
                   if 'loss' in k and not k.startswith('img_'))
    total_3d.backward()
    vit_grads = [
        p.grad for p in model.img_backbone.parameters() if p.grad is not None
    ]
    assert all(g.abs().sum() == 0 for g in vit_grads)
    assert model.seed_fusion.seed_scorers[0].fc4.weight.grad.abs().sum() > 0
    assert model.seed_fusion.img_to_point[0][0].weight.grad is not None


def test_detector_undetached_image_gets_3d_gradient(tiny_fusion_cfg,
                                                    synthetic_batch):
    tiny_fusion_cfg['fusion']['detach_image'] = False
    tiny_fusion_cfg['fusion']['threshold'] = 1.0  # replace every visible key
    model = build_detector(tiny_fusion_cfg)
    model.train()
    losses = run(model, synthetic_batch, 'loss')
    # every seed inside the image is replaced
    assert float(model.fusion_stats['decoder0/replaced']) == 1.0
    total_3d = sum(v for k, v in losses.items()
                   if 'loss' in k and not k.startswith('img_'))
    total_3d.backward()
    grad = model.img_backbone.patch_embed.proj.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_detector_predicts_boxes_per_sample(tiny_fusion_cfg, synthetic_batch):
    model = build_detector(tiny_fusion_cfg)
    model.eval()
    with torch.no_grad():
        results = run(model, synthetic_batch, 'predict')
    assert len(results) == 2
    for result in results:
        pred = result.pred_instances_3d
        assert pred.bboxes_3d.tensor.shape[1] == 7
        assert len(pred.scores_3d) == len(pred.labels_3d) == len(
            pred.bboxes_3d)


def test_fused_keys_reach_every_decoder_layer(tiny_fusion_cfg,
                                              synthetic_batch):
    """Each layer gets keys fused from the ORIGINAL seed keys (reference)."""
    model = build_detector(tiny_fusion_cfg)
    model.eval()
    seen = []
    originals = []
    hooks = [
        layer.register_forward_pre_hook(
            lambda module, args, kwargs: seen.append(args[1].clone()),
            with_kwargs=True) for layer in model.bbox_head.decoder_layers
    ]
    hooks.append(
        model.bbox_head.decoder_key_proj.register_forward_hook(
            lambda module, args, out: originals.append(out)))
    scorer_inputs = []
    for scorer in model.seed_fusion.seed_scorers:
        hooks.append(
            scorer.register_forward_hook(
                lambda module, args, out: scorer_inputs.append(args[0])))
    with torch.no_grad():
        run(model, synthetic_batch, 'predict')
    for hook in hooks:
        hook.remove()
    # Hooks registered after the fusion pre-hooks see the fused keys.
    key = originals[0].permute(0, 2, 1)  # (B, S, C)
    for layer_input in scorer_inputs:
        assert torch.equal(layer_input, key)
    assert len(seen) == 2


def test_missing_image_or_calibration_is_a_clear_error(tiny_fusion_cfg,
                                                       synthetic_batch):
    model = build_detector(tiny_fusion_cfg)
    batch = copy.deepcopy(synthetic_batch)
    del batch['inputs']['img']
    with pytest.raises(ValueError, match='needs images'):
        run(model, batch, 'loss')
    batch = copy.deepcopy(synthetic_batch)
    for sample in batch['data_samples']:
        sample.set_metainfo(dict(depth2img=None))
    with pytest.raises(KeyError, match="no 'depth2img' calibration"):
        run(model, batch, 'loss')


def test_too_few_vit_blocks_is_rejected(tiny_fusion_cfg):
    tiny_fusion_cfg['fusion']['blocks_per_layer'] = 3
    with pytest.raises(ValueError, match='need 6 ViT blocks'):
        build_detector(tiny_fusion_cfg)


def test_bad_point_clouds_are_named(tiny_fusion_cfg, synthetic_batch):
    model = build_detector(tiny_fusion_cfg)
    batch = copy.deepcopy(synthetic_batch)
    batch['inputs']['points'][1][5, 0] = float('nan')
    name = osp.basename(batch['data_samples'][1].img_path)
    with pytest.raises(ValueError, match='1 of 2048 points have NaN'):
        run(model, batch, 'loss')
    with pytest.raises(ValueError, match=f'sample 1 .*{name}'):
        run(model, batch, 'predict')
    batch = copy.deepcopy(synthetic_batch)
    batch['inputs']['points'] = [p[:100] for p in batch['inputs']['points']]
    with pytest.raises(ValueError, match='100 points, the backbone samples'):
        run(model, batch, 'loss')


def test_scene_without_objects_trains(tiny_fusion_cfg, synthetic_batch):
    model = build_detector(tiny_fusion_cfg)
    model.train()
    batch = copy.deepcopy(synthetic_batch)
    sample = batch['data_samples'][0]
    sample.gt_instances_3d = sample.gt_instances_3d[:0]
    sample.gt_instances = sample.gt_instances[:0]
    losses = run(model, batch, 'loss')
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()


@pytest.mark.parametrize('values, message', [
    (np.zeros((0, 6), np.float32), 'the point cloud is empty'),
    (np.array([[0, 1, 2, 0, 0, 0], [np.nan, 1, 2, 0, 0, 0]],
              np.float32), '1 of 2 points have NaN'),
])
def test_pipeline_names_bad_point_files(tmp_path, values, message):
    from mmcv.transforms import Compose
    path = tmp_path / '000042.bin'
    values.tofile(path)
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        pipeline = Compose([
            dict(
                type='LoadPointsFromFile',
                coord_type='DEPTH',
                load_dim=6,
                use_dim=[0, 1, 2]),
            dict(type='CheckPointCloud'),
            dict(type='PointSample', num_points=16)
        ])
        with pytest.raises(ValueError, match=f'000042.bin: {message}'):
            pipeline(dict(lidar_points=dict(lidar_path=str(path))))
