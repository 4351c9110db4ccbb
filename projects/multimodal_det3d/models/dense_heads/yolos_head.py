"""YOLOS detection head: DETR's set prediction on the ViT [DET] tokens."""
import copy
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.dense_heads import DETRHead
from mmdet.models.layers import MLP
from mmdet.registry import MODELS
from mmdet.structures.bbox import BaseBoxes, bbox_cxcywh_to_xyxy
from mmengine.structures import InstanceData
from torch import Tensor

# Type names carry the 'mmdet.' scope so that the head builds from the mmdet
# scope and from the mmdet3d (or any other) default scope alike.
DEFAULT_LOSS_CLS = dict(
    type='mmdet.CrossEntropyLoss',
    bg_cls_weight=0.1,
    use_sigmoid=False,
    loss_weight=1.0,
    class_weight=1.0)
DEFAULT_LOSS_BBOX = dict(type='mmdet.L1Loss', loss_weight=5.0)
DEFAULT_LOSS_IOU = dict(type='mmdet.GIoULoss', loss_weight=2.0)
DEFAULT_TRAIN_CFG = dict(
    assigner=dict(
        type='mmdet.HungarianAssigner',
        match_costs=[
            dict(type='mmdet.ClassificationCost', weight=1.),
            dict(type='mmdet.BBoxL1Cost', weight=5.0, box_format='xywh'),
            dict(type='mmdet.IoUCost', iou_mode='giou', weight=2.0)
        ]))
DEFAULT_TEST_CFG = dict(max_per_img=100)


def detr_class_weights(loss_cls: dict, num_classes: int) -> Tuple[dict, float]:
    """Turn DETR's ``bg_cls_weight`` into an explicit per-class weight list.

    mmdet's ``DETRHead`` does this only for itself (not for subclasses) and
    mutates the config it is given; this works on a copy.

    Args:
        loss_cls (dict): Classification loss config. ``class_weight`` may be
            a number (weight of every foreground class), a sequence with one
            weight per output channel, or absent; ``bg_cls_weight`` (softmax
            only) is the weight of the no-object class.
        num_classes (int): Foreground classes C.

    Returns:
        tuple: the new config (``bg_cls_weight`` removed, ``class_weight``
        a list of C + 1 floats for softmax losses) and the no-object weight
        DETR uses in the classification normaliser (0 when none is set).
    """
    cfg = copy.deepcopy(dict(loss_cls))
    bg_weight = cfg.pop('bg_cls_weight', None)
    class_weight = cfg.get('class_weight', None)
    use_sigmoid = cfg.get('use_sigmoid', False)
    num_outputs = num_classes if use_sigmoid else num_classes + 1
    if use_sigmoid and bg_weight is not None:
        raise ValueError('loss_cls: bg_cls_weight needs a softmax loss '
                         '(use_sigmoid=False)')
    if isinstance(class_weight, Tensor):
        class_weight = class_weight.tolist()
    if isinstance(class_weight, (int, float)):
        weights = [float(class_weight)] * num_outputs
        if not use_sigmoid:
            weights[-1] = float(class_weight if bg_weight is
                                None else bg_weight)
        cfg['class_weight'] = weights
    elif class_weight is not None:
        weights = [float(weight) for weight in class_weight]
        if len(weights) != num_outputs:
            raise ValueError(f'loss_cls.class_weight has {len(weights)} '
                             f'entries, expected {num_outputs}')
        if bg_weight is not None:
            raise ValueError('loss_cls: give the no-object weight either as '
                             'bg_cls_weight or as the last class_weight, '
                             'not both')
        cfg['class_weight'] = weights
    elif bg_weight is not None:
        cfg['class_weight'] = [1.0] * num_classes + [float(bg_weight)]
    if use_sigmoid or 'class_weight' not in cfg:
        return cfg, 0.
    return cfg, cfg['class_weight'][-1]


def _as_tensor_instances(gt_instances: InstanceData, index: int,
                         img_meta: dict) -> InstanceData:
    """Check a sample's 2D targets; box structures become plain tensors."""
    keys = set(gt_instances.keys())
    if not {'bboxes', 'labels'} <= keys:
        raise KeyError(f'data sample {index}: gt_instances needs "bboxes" '
                       f'(K, 4) x1y1x2y2 pixels and "labels" (K,), found '
                       f'{sorted(keys)}')
    if 'img_shape' not in img_meta:
        raise KeyError(f'data sample {index}: metainfo needs "img_shape" '
                       f'(H, W) to normalise the 2D boxes')
    bboxes = gt_instances.bboxes
    if isinstance(bboxes, BaseBoxes):
        bboxes = bboxes.tensor
    bboxes = torch.as_tensor(bboxes).reshape(-1, 4).float()
    labels = torch.as_tensor(gt_instances.labels).reshape(-1).long()
    return InstanceData(bboxes=bboxes, labels=labels.to(bboxes.device))


@MODELS.register_module()
class YOLOSHead(DETRHead):
    """DETR head with YOLOS' prediction MLPs (Fang et al., NeurIPS 2021).

    ``class_embed``: 3-layer MLP D -> D -> D -> C+1 (ReLU); ``bbox_embed``:
    3-layer MLP D -> D -> D -> 4 (ReLU) then sigmoid, giving normalised
    (cx, cy, w, h). YOLOS has no decoder, so the input is one "layer":
    ``det_tokens[None]``. Matching and losses are DETR's (Hungarian with
    costs class 1 / L1 5 / GIoU 2; CE with no-object weight 0.1, L1 5.0,
    GIoU 2.0). Works with mmdet ``DetDataSample`` and mmdet3d
    ``Det3DDataSample`` (2D targets in ``gt_instances.bboxes`` / ``labels``,
    ``img_shape`` in the metainfo).

    Args:
        num_classes (int): Foreground classes C.
        embed_dims (int): Token width D. Defaults to 192 (YOLOS-Ti).
        num_mlp_layers (int): Layers of each prediction MLP. Defaults to 3.
        sync_cls_avg_factor (bool): Average the class normaliser over GPUs.
        loss_cls, loss_bbox, loss_iou (dict, optional): Loss configs; None
            gives the YOLOS defaults above.
        train_cfg (dict, optional): ``dict(assigner=...)``; None gives the
            Hungarian assigner above.
        test_cfg (dict, optional): ``dict(max_per_img=...)``; None gives
            ``max_per_img=100`` (capped by the number of det tokens).
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 num_classes: int,
                 embed_dims: int = 192,
                 num_mlp_layers: int = 3,
                 sync_cls_avg_factor: bool = False,
                 loss_cls: Optional[dict] = None,
                 loss_bbox: Optional[dict] = None,
                 loss_iou: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        self.num_mlp_layers = num_mlp_layers
        loss_cls, bg_cls_weight = detr_class_weights(
            DEFAULT_LOSS_CLS if loss_cls is None else loss_cls, num_classes)
        super().__init__(
            num_classes=num_classes,
            embed_dims=embed_dims,
            sync_cls_avg_factor=sync_cls_avg_factor,
            loss_cls=loss_cls,
            loss_bbox=copy.deepcopy(DEFAULT_LOSS_BBOX if loss_bbox is
                                    None else loss_bbox),
            loss_iou=copy.deepcopy(DEFAULT_LOSS_IOU if loss_iou is
                                   None else loss_iou),
            train_cfg=copy.deepcopy(DEFAULT_TRAIN_CFG if train_cfg is
                                    None else train_cfg),
            test_cfg=copy.deepcopy(DEFAULT_TEST_CFG if test_cfg is
                                   None else test_cfg),
            init_cfg=init_cfg)
        # DETRHead sets this only when its class is exactly DETRHead
        self.bg_cls_weight = bg_cls_weight

    def _init_layers(self) -> None:
        """YOLOS' class and box MLPs replace DETR's fc_cls/reg_ffn/fc_reg."""
        self.class_embed = MLP(self.embed_dims, self.embed_dims,
                               self.cls_out_channels, self.num_mlp_layers)
        self.bbox_embed = MLP(self.embed_dims, self.embed_dims, 4,
                              self.num_mlp_layers)

    def forward(self, hidden_states: Tensor) -> Tuple[Tensor, Tensor]:
        """Predict classes and boxes from the [DET] tokens.

        Args:
            hidden_states (Tensor): (L, B, T, D); YOLOS passes L = 1.

        Returns:
            tuple[Tensor, Tensor]: class logits (L, B, T, C+1) (C with a
            sigmoid loss) and boxes (L, B, T, 4), normalised (cx, cy, w, h)
            in [0, 1].
        """
        if hidden_states.dim() != 4 or (hidden_states.shape[-1]
                                        != self.embed_dims):
            raise ValueError(
                f'YOLOSHead expects hidden_states (L, B, T, '
                f'{self.embed_dims}), got {tuple(hidden_states.shape)}; pass '
                f'det_tokens[None]')
        cls_scores = self.class_embed(hidden_states)
        bbox_preds = self.bbox_embed(hidden_states).sigmoid()
        return cls_scores, bbox_preds

    def loss_by_feat(self,
                     all_layers_cls_scores: Tensor,
                     all_layers_bbox_preds: Tensor,
                     batch_gt_instances: List[InstanceData],
                     batch_img_metas: List[dict],
                     batch_gt_instances_ignore=None) -> Dict[str, Tensor]:
        """DETR losses after checking the targets (see ``DETRHead``).

        Box structures (``HorizontalBoxes``) become tensors, so samples
        that bypassed mmdet's data preprocessor work too; a sample without
        boxes contributes pure no-object classification.
        """
        batch_gt_instances = [
            _as_tensor_instances(gt, index, meta) for index, (
                gt,
                meta) in enumerate(zip(batch_gt_instances, batch_img_metas))
        ]
        return super().loss_by_feat(all_layers_cls_scores,
                                    all_layers_bbox_preds, batch_gt_instances,
                                    batch_img_metas, batch_gt_instances_ignore)

    def _predict_by_feat_single(self,
                                cls_score: Tensor,
                                bbox_pred: Tensor,
                                img_meta: dict,
                                rescale: bool = True) -> InstanceData:
        """Top-scoring boxes of one image.

        Args:
            cls_score (Tensor): (T, C+1) logits (C for sigmoid losses).
            bbox_pred (Tensor): (T, 4) normalised (cx, cy, w, h).
            img_meta (dict): Needs ``img_shape`` (H, W); with ``rescale``
                the boxes are divided by ``scale_factor`` (w, h) when present
                (an image that was not resized has none).
            rescale (bool): Map boxes back to the original image.

        Returns:
            InstanceData: ``bboxes`` (K, 4) x1y1x2y2 pixels, ``scores`` (K,)
            and ``labels`` (K,), K = min(max_per_img, T).
        """
        if 'img_shape' not in img_meta:
            raise KeyError('YOLOSHead.predict: metainfo needs "img_shape"')
        num_queries = cls_score.shape[0]
        max_per_img = min((self.test_cfg or {}).get('max_per_img',
                                                    num_queries), num_queries)
        img_h, img_w = img_meta['img_shape'][:2]
        if self.loss_cls.use_sigmoid:
            scores, indices = cls_score.sigmoid().flatten().topk(
                min(max_per_img, cls_score.numel()))
            labels = indices % self.num_classes
            bbox_pred = bbox_pred[indices // self.num_classes]
        else:
            scores, labels = F.softmax(cls_score, dim=-1)[:, :-1].max(-1)
            scores, indices = scores.topk(max_per_img)
            labels = labels[indices]
            bbox_pred = bbox_pred[indices]
        bboxes = bbox_cxcywh_to_xyxy(bbox_pred) * bbox_pred.new_tensor(
            [img_w, img_h, img_w, img_h])
        bboxes[:, 0::2] = bboxes[:, 0::2].clamp(min=0, max=img_w)
        bboxes[:, 1::2] = bboxes[:, 1::2].clamp(min=0, max=img_h)
        if rescale and img_meta.get('scale_factor') is not None:
            scale = img_meta['scale_factor']
            if isinstance(scale, (int, float)):
                scale = (scale, scale)
            bboxes = bboxes / bboxes.new_tensor(scale[:2]).repeat(2)
        return InstanceData(bboxes=bboxes, scores=scores, labels=labels)
