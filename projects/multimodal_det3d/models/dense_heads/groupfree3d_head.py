"""GroupFree3D head with rotated-box targets that work and a hook for fusing
the decoder's seed keys."""
from functools import partial
from typing import Callable, Dict, Type

from mmdet3d.models.dense_heads import GroupFree3DHead
from mmdet3d.registry import MODELS
from mmdet3d.structures import BaseInstance3DBoxes
from torch import Tensor

from ...checks import check_point_clouds

_MEMBERSHIP_TYPES: Dict[type, Type[BaseInstance3DBoxes]] = {}


def _points_in_boxes_membership(self,
                                points: Tensor,
                                boxes_override=None) -> Tensor:
    return self.points_in_boxes_all(points, boxes_override)


def with_box_membership(boxes: BaseInstance3DBoxes) -> BaseInstance3DBoxes:
    """The same boxes, whose ``points_in_boxes_part`` answers what
    GroupFree3D's rotated-box target code needs: the (N, M) point-in-box
    membership of ``points_in_boxes_all``.

    mmdet3d 1.4's ``GroupFree3DHead._get_targets_single`` calls
    ``points_in_boxes_part`` (one box index per point, shape (N,)) and then
    reads column ``i`` of it (mmdet3d issue #2493), so SUN RGB-D training
    fails. ``new_box`` keeps the type, so the padded boxes the method builds
    answer the same way.
    """
    base = type(boxes)
    if base not in _MEMBERSHIP_TYPES:
        _MEMBERSHIP_TYPES[base] = type(
            f'{base.__name__}WithMembership', (base, ),
            dict(points_in_boxes_part=_points_in_boxes_membership))
    return _MEMBERSHIP_TYPES[base](
        boxes.tensor, box_dim=boxes.box_dim, with_yaw=boxes.with_yaw)


@MODELS.register_module()
class TokenFusionGroupFree3DHead(GroupFree3DHead):
    """mmdet3d's ``GroupFree3DHead`` that

    * trains with rotated boxes (SUN RGB-D, ``bbox_coder.with_rot=True``):
      see :func:`with_box_membership`;
    * fuses its seed keys before every decoder layer when the feature dict
      carries ``'key_fusion'``: a callable ``(layer, key) -> key`` on keys
      of shape (S, B, C). GroupFree3D uses the same tensor as key and value
      and builds every layer from the unfused keys, so each layer's fused
      keys come from the original seed keys, as in the reference.

    * predicts test batches larger than 1 (:meth:`predict_by_feat`);
    * rejects non-finite points, naming the scan (:func:`check_point_clouds`).

    Without ``'key_fusion'`` it is otherwise ``GroupFree3DHead``, so the
    points-only baseline uses it too.
    """

    def loss(self, points, feats_dict, batch_data_samples, **kwargs):
        check_point_clouds(points, [s.metainfo for s in batch_data_samples])
        return super().loss(points, feats_dict, batch_data_samples, **kwargs)

    def predict(self, points, feats_dict, batch_data_samples, **kwargs):
        check_point_clouds(points, [s.metainfo for s in batch_data_samples])
        return super().predict(points, feats_dict, batch_data_samples,
                               **kwargs)

    def forward(self, feat_dict: dict) -> dict:
        key_fusion = feat_dict.get('key_fusion')
        if key_fusion is None:
            return super().forward(feat_dict)
        handles = [
            layer.register_forward_pre_hook(
                partial(self._fuse_keys, i, key_fusion), with_kwargs=True)
            for i, layer in enumerate(self.decoder_layers)
        ]
        try:
            return super().forward(feat_dict)
        finally:
            for handle in handles:
                handle.remove()

    @staticmethod
    def _fuse_keys(layer: int, key_fusion: Callable, module, args: tuple,
                   kwargs: dict):
        # GroupFree3DHead calls decoder_layers[i](query, key, value, ...)
        # with value = key.
        query, key, _ = args
        fused = key_fusion(layer, key)
        return (query, fused, fused), kwargs

    def predict_by_feat(self,
                        points,
                        bbox_preds_dict,
                        batch_input_metas,
                        use_nms: bool = True,
                        **kwargs):
        """Sample by sample: mmdet3d 1.4 fills ONE ``InstanceData`` for the
        whole batch, so a test batch larger than 1 fails or returns the last
        sample's boxes for every sample."""
        if not use_nms or len(points) == 1:
            return super().predict_by_feat(points, bbox_preds_dict,
                                           batch_input_metas, use_nms,
                                           **kwargs)
        results = []
        for b, (sample_points,
                meta) in enumerate(zip(points, batch_input_metas)):
            sample_preds = {
                key: value[b:b + 1] if isinstance(value, Tensor) else value
                for key, value in bbox_preds_dict.items()
            }
            results += super().predict_by_feat([sample_points], sample_preds,
                                               [meta], use_nms, **kwargs)
        return results

    def _get_targets_single(self, points, gt_bboxes_3d, *args, **kwargs):
        if self.bbox_coder.with_rot:
            gt_bboxes_3d = with_box_membership(gt_bboxes_3d)
        return super()._get_targets_single(points, gt_bboxes_3d, *args,
                                           **kwargs)
