"""YOLOS: the ViT with [DET] tokens (shapes, stepwise API, mid-PE, position
embedding interpolation, DeiT / YOLOS checkpoint loading), the DETR-style
head (defaults, both scopes, losses, prediction) and the 2D detector."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmdet3d.registry import MODELS as MMDET3D_MODELS
from mmdet3d.structures import Det3DDataSample
from mmdet.registry import MODELS as MMDET_MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes, bbox_xyxy_to_cxcywh
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from projects.multimodal_det3d.models.backbones.yolos_vit import (
    YOLOSViT, infer_patch_grid, load_yolos_vit_checkpoint,
    resize_patch_pos_embed)
from projects.multimodal_det3d.models.dense_heads import yolos_head
from projects.multimodal_det3d.models.dense_heads.yolos_head import YOLOSHead
from projects.multimodal_det3d.models.detectors.yolos import YOLOS

DIMS = 16
ARCH = dict(embed_dims=DIMS, num_layers=4, num_heads=2)
NUM_DET = 5


def make_vit(**kwargs):
    cfg = dict(
        arch=ARCH,
        patch_size=8,
        num_det_tokens=NUM_DET,
        init_pe_size=(32, 48),
        drop_path_rate=0.)
    cfg.update(kwargs)
    return YOLOSViT(**cfg)


def bicubic(patch_pos, src_hw, dst_hw):
    """Reference resize: (1, h0*w0, D) -> (1, h*w, D)."""
    grid = patch_pos.reshape(1, *src_hw, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(
        grid, size=dst_hw, mode='bicubic', align_corners=False)
    return grid.flatten(2).transpose(1, 2)


# ------------------------------------------------------------------ ViT
def test_vit_shapes_and_stepwise_api():
    vit = make_vit()
    assert (vit.embed_dims, vit.num_layers, vit.patch_size,
            vit.num_det_tokens) == (DIMS, 4, 8, NUM_DET)
    assert vit.pos_embed.shape == (1, 1 + 4 * 6 + NUM_DET, DIMS)
    imgs = torch.randn(2, 3, 37, 50)  # not multiples of 8: floor to 4 x 6
    tokens, grid_hw = vit.embed(imgs)
    assert grid_hw == (4, 6)
    assert tokens.shape == (2, 1 + 24 + NUM_DET, DIMS)
    assert vit.patch_tokens(tokens).shape == (2, 24, DIMS)
    assert vit.det_tokens(tokens).shape == (2, NUM_DET, DIMS)
    (det, ) = vit(imgs)
    assert det.shape == (2, NUM_DET, DIMS)


@pytest.mark.parametrize('arch,dims,heads', [('tiny', 192, 3),
                                             ('small', 384, 6)])
def test_named_archs_use_deit_key_names(arch, dims, heads):
    vit = YOLOSViT(arch=arch, init_pe_size=(64, 48), mid_pe=arch == 'small')
    assert (vit.embed_dims, vit.num_layers, vit.num_heads) == (dims, 12, heads)
    state = vit.state_dict()
    grid_tokens = 1 + 4 * 3 + 100
    assert state['pos_embed'].shape == (1, grid_tokens, dims)
    assert state['det_token'].shape == (1, 100, dims)
    assert state['cls_token'].shape == (1, 1, dims)
    assert state['patch_embed.proj.weight'].shape == (dims, 3, 16, 16)
    for key in ('blocks.11.norm1.weight', 'blocks.0.attn.qkv.bias',
                'blocks.0.attn.proj.weight', 'blocks.3.norm2.bias',
                'blocks.5.mlp.fc1.weight', 'blocks.5.mlp.fc2.weight',
                'norm.weight'):
        assert key in state, key
    assert state['blocks.0.mlp.fc1.weight'].shape == (4 * dims, dims)
    assert vit.norm.eps == 1e-6
    if arch == 'small':
        assert state['mid_pos_embed'].shape == (11, 1, grid_tokens, dims)
    else:
        assert 'mid_pos_embed' not in state


def test_bad_arch_and_small_image_errors():
    with pytest.raises(ValueError, match='unknown YOLOSViT arch'):
        YOLOSViT(arch='huge')
    with pytest.raises(KeyError, match='num_heads'):
        YOLOSViT(arch=dict(embed_dims=16, num_layers=2))
    vit = make_vit()
    with pytest.raises(ValueError, match='image smaller than a patch'):
        vit.embed(torch.randn(1, 3, 7, 32))
    with pytest.raises(ValueError, match='start <= stop'):
        tokens, grid_hw = vit.embed(torch.randn(1, 3, 32, 48))
        vit.forward_blocks(tokens, 3, 2, grid_hw)


@pytest.mark.parametrize('mid_pe', [False, True])
def test_stepwise_equals_forward(mid_pe):
    torch.manual_seed(0)
    vit = make_vit(mid_pe=mid_pe, drop_path_rate=0.3).eval()
    imgs = torch.randn(2, 3, 40, 56)  # another grid than the init one
    with torch.no_grad():
        (expected, ) = vit(imgs)
        tokens, grid_hw = vit.embed(imgs)
        tokens = vit.forward_blocks(tokens, 0, 1, grid_hw)
        tokens = vit.forward_blocks(tokens, 1, 4, grid_hw)
        stepwise = vit.det_tokens(tokens)
    torch.testing.assert_close(stepwise, expected)


def test_mid_pe_added_after_every_block_but_last():
    torch.manual_seed(0)
    vit = make_vit(mid_pe=True).eval()
    assert vit.mid_pos_embed.shape[0] == vit.num_layers - 1
    with torch.no_grad():
        vit.mid_pos_embed.normal_(std=1.)
        tokens, grid_hw = vit.embed(torch.randn(1, 3, 32, 48))
        # block 0: its mid-PE (init grid: used as is) is added
        torch.testing.assert_close(
            vit.forward_blocks(tokens, 0, 1, grid_hw),
            vit.blocks[0](tokens) + vit.mid_pos_embed[0])
        # the last block adds nothing
        torch.testing.assert_close(
            vit.forward_blocks(tokens, 3, 4, grid_hw), vit.blocks[3](tokens))
        # perturbing the mid-PE of block 2 (second to last) changes the
        # output of blocks [2, 4); zeroing all mid-PEs equals plain blocks
        before = vit.forward_blocks(tokens, 2, 4, grid_hw)
        vit.mid_pos_embed[2] += 1.
        assert not torch.allclose(
            vit.forward_blocks(tokens, 2, 4, grid_hw), before)
        vit.mid_pos_embed.zero_()
        plain = tokens
        for block in vit.blocks:
            plain = block(plain)
        torch.testing.assert_close(
            vit.forward_blocks(tokens, 0, 4, grid_hw), plain)
        # another input grid: the patch part of the mid-PE is interpolated
        vit.mid_pos_embed.normal_(std=1.)
        tokens, grid_hw = vit.embed(torch.randn(1, 3, 48, 64))
        assert grid_hw == (6, 8)
        mid = vit.mid_pos_embed[0]
        expected_mid = torch.cat(
            [mid[:, :1],
             bicubic(mid[:, 1:25], (4, 6), (6, 8)), mid[:, 25:]],
            dim=1)
        torch.testing.assert_close(
            vit.forward_blocks(tokens, 0, 1, grid_hw),
            vit.blocks[0](tokens) + expected_mid)


def test_runtime_pos_embed_interpolation():
    torch.manual_seed(0)
    vit = make_vit().eval()
    pos_before = vit.pos_embed.detach().clone()
    imgs = torch.randn(2, 3, 48, 64)
    with torch.no_grad():
        tokens, grid_hw = vit.embed(imgs)
        patches = vit.patch_embed.proj(imgs).flatten(2).transpose(1, 2)
    assert grid_hw == (6, 8)
    content = torch.cat([
        vit.cls_token.expand(2, -1, -1), patches,
        vit.det_token.expand(2, -1, -1)
    ],
                        dim=1)
    pos = vit.pos_embed
    expected_pos = torch.cat(
        [pos[:, :1],
         bicubic(pos[:, 1:25], (4, 6), (6, 8)), pos[:, 25:]],
        dim=1)
    torch.testing.assert_close(tokens, content + expected_pos)
    torch.testing.assert_close(vit.pos_embed.detach(), pos_before)
    # at the init grid the stored embedding is used unchanged
    with torch.no_grad():
        tokens, _ = vit.embed(imgs[..., :32, :48])
        patches = vit.patch_embed.proj(imgs[..., :32, :48])
    torch.testing.assert_close(
        tokens[:, 1:25] - patches.flatten(2).transpose(1, 2),
        pos[:, 1:25].expand(2, -1, -1))


def test_resize_helpers():
    pos = torch.randn(2, 12, 4)
    assert resize_patch_pos_embed(pos, (3, 4), (3, 4)) is pos
    assert resize_patch_pos_embed(pos, (3, 4), (5, 2)).shape == (2, 10, 4)
    with pytest.raises(ValueError, match='expected 3x5'):
        resize_patch_pos_embed(pos, (3, 5), (3, 4))
    assert infer_patch_grid(196, [None, (4, 6)]) == (14, 14)
    assert infer_patch_grid(24, [None, (4, 6)]) == (4, 6)
    assert infer_patch_grid(24, [(2, 12), (4, 6)]) == (2, 12)
    assert infer_patch_grid(16, [(4, 6), (2, 8)], square_first=True) == (4, 4)
    assert infer_patch_grid(15, [(4, 6)]) is None


def test_deit_checkpoint_is_interpolated_on_load(tmp_path):
    torch.manual_seed(0)
    deit = make_vit(init_pe_size=(32, 32))  # a 4 x 4 grid
    state = deit.state_dict()
    state.pop('det_token')
    src_pos = state['pos_embed'][:, :1 + 16].clone()  # cls + 4x4, no det
    state['pos_embed'] = src_pos
    state['head.weight'] = torch.zeros(10, DIMS)  # the ImageNet classifier
    path = tmp_path / 'deit.pth'
    torch.save({'model': state}, path)

    vit = make_vit(init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    det_before = vit.det_token.detach().clone()
    vit.init_weights()
    pos = vit.pos_embed.detach()
    assert pos.shape == (1, 1 + 24 + NUM_DET, DIMS)
    torch.testing.assert_close(pos[:, :1], src_pos[:, :1])
    torch.testing.assert_close(pos[:, 1:25],
                               bicubic(src_pos[:, 1:], (4, 4), (4, 6)))
    det_pos = pos[:, 25:]
    assert 0.005 < det_pos.std() < 0.05  # fresh trunc normal (std 0.02)
    torch.testing.assert_close(vit.det_token.detach(), det_before)
    torch.testing.assert_close(vit.blocks[2].attn.qkv.weight.detach(),
                               state['blocks.2.attn.qkv.weight'])
    missing, unexpected = load_yolos_vit_checkpoint(make_vit(), str(path))
    assert missing == ['det_token'] and unexpected == ['head.weight']


def test_yolos_checkpoint_loads_with_backbone_prefix(tmp_path):
    torch.manual_seed(0)
    src = make_vit(mid_pe=True)  # grid 4 x 6
    state = {
        f'backbone.{key}': value
        for key, value in src.state_dict().items()
    }
    state['class_embed.layers.0.weight'] = torch.zeros(DIMS, DIMS)
    path = tmp_path / 'yolos.pth'
    torch.save({'model': state, 'epoch': torch.tensor(3)}, path)

    # same grid: exact copy, nothing missing or unexpected
    same = make_vit(mid_pe=True)
    missing, unexpected = load_yolos_vit_checkpoint(same, str(path))
    assert missing == [] and unexpected == []
    for key, value in src.state_dict().items():
        torch.testing.assert_close(same.state_dict()[key], value)

    # another grid: the 4 x 6 grid is neither square nor the init grid
    with pytest.raises(ValueError, match='pretrained_pe_size'):
        load_yolos_vit_checkpoint(
            make_vit(mid_pe=True, init_pe_size=(48, 64)), str(path))
    other = make_vit(
        mid_pe=True, init_pe_size=(48, 64), pretrained_pe_size=(32, 48))
    missing, unexpected = load_yolos_vit_checkpoint(other, str(path))
    assert missing == [] and unexpected == []
    pos, src_pos = other.pos_embed.detach(), src.pos_embed.detach()
    torch.testing.assert_close(pos[:, :1], src_pos[:, :1])
    torch.testing.assert_close(pos[:, 1:49],
                               bicubic(src_pos[:, 1:25], (4, 6), (6, 8)))
    torch.testing.assert_close(pos[:, 49:], src_pos[:, 25:])
    mid, src_mid = other.mid_pos_embed.detach(), src.mid_pos_embed.detach()
    assert mid.shape == (3, 1, 1 + 48 + NUM_DET, DIMS)
    torch.testing.assert_close(mid[2, :, 1:49],
                               bicubic(src_mid[2, :, 1:25], (4, 6), (6, 8)))
    torch.testing.assert_close(other.det_token, src.det_token)

    with pytest.raises(ValueError, match='det tokens'):
        load_yolos_vit_checkpoint(
            make_vit(mid_pe=True, num_det_tokens=7), str(path))


def test_checkpoint_format_errors(tmp_path):
    path = tmp_path / 'list.pth'
    torch.save([torch.zeros(1)], path)
    with pytest.raises(TypeError, match='expected a dict checkpoint'):
        load_yolos_vit_checkpoint(make_vit(), str(path))
    path = tmp_path / 'prefix.pth'
    torch.save({'state_dict': {'neck.weight': torch.zeros(1)}}, path)
    with pytest.raises(ValueError, match='under prefix "img_backbone."'):
        load_yolos_vit_checkpoint(
            make_vit(), str(path), prefix='img_backbone.')


# ----------------------------------------------------------------- head
def make_head(num_classes=3, **kwargs):
    return YOLOSHead(num_classes=num_classes, embed_dims=DIMS, **kwargs)


def boxes_sample(cls, bboxes, labels, img_shape=(32, 48), **meta):
    sample = cls(metainfo=dict(img_shape=img_shape, **meta))
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor(bboxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.tensor(labels, dtype=torch.long))
    return sample


@pytest.mark.parametrize('scope,registry,type_name',
                         [('mmdet', MMDET_MODELS, 'YOLOSHead'),
                          ('mmdet3d', MMDET3D_MODELS, 'mmdet.YOLOSHead')])
def test_head_defaults_build_in_both_scopes(scope, registry, type_name):
    with DefaultScope.overwrite_default_scope(scope):
        heads = [
            registry.build(
                dict(type=type_name, num_classes=3, embed_dims=DIMS))
            for _ in range(2)  # DETRHead's mutable default breaks the 2nd
        ]
    assert yolos_head.DEFAULT_LOSS_CLS['bg_cls_weight'] == 0.1
    for head in heads:
        assert head.loss_cls.class_weight == [1.0, 1.0, 1.0, 0.1]
        assert head.bg_cls_weight == 0.1
        assert not head.loss_cls.use_sigmoid
        assert (head.loss_bbox.loss_weight, head.loss_iou.loss_weight) == (5.0,
                                                                           2.0)
        costs = {
            type(cost).__name__: cost.weight
            for cost in head.assigner.match_costs
        }
        assert costs == dict(ClassificationCost=1., BBoxL1Cost=5., IoUCost=2.)
        assert head.class_embed.layers[-1].out_features == 4
        assert head.bbox_embed.layers[-1].out_features == 4
        assert len(head.class_embed.layers) == 3
        assert not hasattr(head, 'fc_cls')
        cls_scores, bbox_preds = head(torch.randn(1, 2, NUM_DET, DIMS))
        assert cls_scores.shape == (1, 2, NUM_DET, 4)
        assert bbox_preds.shape == (1, 2, NUM_DET, 4)
        assert 0 <= bbox_preds.min() and bbox_preds.max() <= 1


def test_head_loss_cls_config_checks():
    head = make_head(
        loss_cls=dict(
            type='mmdet.CrossEntropyLoss', class_weight=[1., 2., 1., .5]))
    assert head.bg_cls_weight == 0.5
    with pytest.raises(ValueError, match='expected 4'):
        make_head(
            loss_cls=dict(type='mmdet.CrossEntropyLoss', class_weight=[1.]))
    with pytest.raises(ValueError, match='not both'):
        make_head(
            loss_cls=dict(
                type='mmdet.CrossEntropyLoss',
                bg_cls_weight=0.1,
                class_weight=[1., 1., 1., 1.]))


@pytest.mark.parametrize('sample_cls', [DetDataSample, Det3DDataSample])
def test_head_loss_and_predict_with_data_samples(sample_cls):
    torch.manual_seed(0)
    head = make_head()
    samples = [
        boxes_sample(sample_cls, [[2., 3., 20., 25.], [30., 1., 47., 12.]],
                     [0, 2]),
        boxes_sample(sample_cls, [], [])  # no boxes: only no-object CE
    ]
    hidden = torch.randn(1, 2, NUM_DET, DIMS, requires_grad=True)
    losses = head.loss(hidden, samples)
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_iou'}
    assert all(torch.isfinite(value) for value in losses.values())
    sum(losses.values()).backward()
    assert torch.isfinite(hidden.grad).all() and hidden.grad.abs().sum() > 0

    empty_losses = head.loss(hidden[:, 1:], samples[1:])
    assert empty_losses['loss_bbox'] == 0 and empty_losses['loss_iou'] == 0
    assert empty_losses['loss_cls'] > 0

    results = head.predict(hidden.detach(), samples, rescale=True)
    assert len(results) == 2
    for result in results:
        assert result.bboxes.shape == (NUM_DET, 4)  # max_per_img capped
        assert result.scores.shape == result.labels.shape == (NUM_DET, )
        assert (result.bboxes[:, 0::2] <= 48).all()
        assert (result.bboxes[:, 1::2] <= 32).all()
        assert (result.bboxes >= 0).all()
        assert (result.labels < 3).all()


def test_head_accepts_box_structures_and_checks_targets():
    head = make_head()
    sample = DetDataSample(metainfo=dict(img_shape=(32, 48)))
    sample.gt_instances = InstanceData(
        bboxes=HorizontalBoxes(torch.tensor([[2., 3., 20., 25.]])),
        labels=torch.tensor([1]))
    losses = head.loss(torch.randn(1, 1, NUM_DET, DIMS), [sample])
    assert torch.isfinite(losses['loss_bbox'])
    sample = DetDataSample(metainfo=dict(img_shape=(32, 48)))
    sample.gt_instances = InstanceData(labels=torch.tensor([1]))
    with pytest.raises(KeyError, match='"bboxes"'):
        head.loss(torch.randn(1, 1, NUM_DET, DIMS), [sample])
    with pytest.raises(ValueError, match='det_tokens'):
        head(torch.randn(1, NUM_DET, DIMS))


def test_hungarian_matching_perfect_prediction_and_no_object_weight():
    head = make_head()
    img_shape = (32, 48)
    gt = torch.tensor([[2., 3., 20., 25.], [30., 1., 47., 12.]])
    labels = torch.tensor([0, 2])
    sample = boxes_sample(DetDataSample, gt.tolist(), labels.tolist(),
                          img_shape)
    factor = torch.tensor([48., 32., 48., 32.])
    # queries 3 and 1 predict the two boxes exactly with confident classes;
    # the other queries are confident no-object predictions elsewhere
    bbox_preds = torch.full((1, 1, NUM_DET, 4), 0.3)
    bbox_preds[0, 0, 3] = bbox_xyxy_to_cxcywh(gt[0] / factor)
    bbox_preds[0, 0, 1] = bbox_xyxy_to_cxcywh(gt[1] / factor)
    cls_scores = torch.full((1, 1, NUM_DET, 4), -10.)
    cls_scores[..., 3] = 10.
    cls_scores[0, 0, 3] = torch.tensor([10., -10., -10., -10.])
    cls_scores[0, 0, 1] = torch.tensor([-10., -10., 10., -10.])
    losses = head.loss_by_feat(cls_scores, bbox_preds, [sample.gt_instances],
                               [sample.metainfo])
    assert losses['loss_bbox'] < 1e-6
    assert losses['loss_iou'] < 1e-6
    assert losses['loss_cls'] < 1e-3

    # no boxes: every query is no-object with CE weight 0.1 and DETR
    # normalises by the summed weights (eos_coef); with 20 queries that is
    # 2 (> the floor of 1), so the loss is the plain mean CE
    num_queries = 20
    empty = boxes_sample(DetDataSample, [], [], img_shape)
    logits = torch.randn(1, 1, num_queries, 4)
    boxes = torch.rand(1, 1, num_queries, 4)
    losses = head.loss_by_feat(logits, boxes, [empty.gt_instances],
                               [empty.metainfo])
    ce = F.cross_entropy(
        logits[0, 0], torch.full((num_queries, ), 3), reduction='none')
    torch.testing.assert_close(losses['loss_cls'], ce.mean())
    # one box: the matched query weighs 1, the 19 others 0.1 each
    losses = head.loss_by_feat(logits, boxes, [sample.gt_instances[:1]],
                               [sample.metainfo])
    matched = head.get_targets([logits[0, 0]], [boxes[0, 0]],
                               [sample.gt_instances[:1]],
                               [sample.metainfo])[0][0]
    weights = torch.where(matched == 3, 0.1, 1.0)
    ce = F.cross_entropy(logits[0, 0], matched, reduction='none')
    torch.testing.assert_close(losses['loss_cls'],
                               (weights * ce).sum() / weights.sum())
    assert (matched == 0).sum() == 1 and (matched == 3).sum() == 19


def test_predict_rescales_by_scale_factor():
    torch.manual_seed(0)
    head = make_head(test_cfg=dict(max_per_img=3))
    hidden = torch.randn(1, 1, NUM_DET, DIMS)
    sample = DetDataSample(
        metainfo=dict(img_shape=(32, 48), scale_factor=(0.5, 0.25)))
    plain = head.predict(hidden, [sample], rescale=False)[0]
    rescaled = head.predict(hidden, [sample], rescale=True)[0]
    assert plain.bboxes.shape == (3, 4)
    torch.testing.assert_close(
        rescaled.bboxes, plain.bboxes / torch.tensor([0.5, 0.25, 0.5, 0.25]))


# ------------------------------------------------------------- detector
def test_yolos_detector_train_step_and_predict():
    torch.manual_seed(0)
    cfg = dict(
        type='YOLOS',
        data_preprocessor=dict(
            type='DetDataPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True,
            pad_size_divisor=1),
        backbone=dict(
            type='YOLOSViT',
            arch=ARCH,
            patch_size=8,
            num_det_tokens=NUM_DET,
            init_pe_size=(32, 48)),
        bbox_head=dict(type='YOLOSHead', num_classes=3))
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MMDET_MODELS.build(cfg)
    assert isinstance(model, YOLOS)
    assert model.bbox_head.embed_dims == DIMS
    # images resized from 64 x 96 to 32 x 48 by the pipeline
    meta = dict(img_shape=(32, 48), ori_shape=(64, 96), scale_factor=(.5, .5))
    samples = [
        boxes_sample(DetDataSample, [[2., 3., 20., 25.]], [1], **meta),
        boxes_sample(DetDataSample, [], [], **meta)
    ]
    data = dict(
        inputs=[
            torch.randint(0, 256, (3, 32, 48), dtype=torch.uint8)
            for _ in range(2)
        ],
        data_samples=samples)
    batch = model.data_preprocessor(data, True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = model(**batch, mode='loss')
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_iou'}
    assert all(torch.isfinite(value) for value in losses.values())
    sum(losses.values()).backward()
    assert model.backbone.pos_embed.grad is not None
    optimizer.step()

    model.eval()
    batch = model.data_preprocessor(data, False)
    with torch.no_grad():
        cls_scores, bbox_preds = model(**batch, mode='tensor')
        assert cls_scores.shape == (1, 2, NUM_DET, 4)
        results = model(**batch, mode='predict')
        plain = model.predict(
            batch['inputs'],
            copy.deepcopy(batch['data_samples']),
            rescale=False)
    assert len(results) == 2 and isinstance(results[0], DetDataSample)
    pred = results[0].pred_instances
    assert pred.bboxes.shape == (NUM_DET, 4)
    torch.testing.assert_close(pred.bboxes, plain[0].pred_instances.bboxes * 2)
    assert (pred.bboxes[:, 0::2] <= 96).all()
    assert (pred.bboxes[:, 1::2] <= 64).all()


def test_yolos_detector_checks_head_width():
    with DefaultScope.overwrite_default_scope('mmdet'), \
            pytest.raises(ValueError, match='embed_dims'):
        YOLOS(
            backbone=dict(
                type='YOLOSViT',
                arch=ARCH,
                patch_size=8,
                num_det_tokens=NUM_DET,
                init_pe_size=(32, 48)),
            bbox_head=dict(type='YOLOSHead', num_classes=3, embed_dims=32))
