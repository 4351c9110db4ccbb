"""YOLOS 2D detector for mmdet: :class:`YOLOSViT` + :class:`YOLOSHead`."""
import copy
from typing import Optional, Tuple

from mmdet.models.detectors import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures import OptSampleList, SampleList
from torch import Tensor

# imported for their registration in mmdet's MODELS
from ..backbones.yolos_vit import YOLOSViT  # noqa: F401
from ..dense_heads.yolos_head import YOLOSHead  # noqa: F401


@MODELS.register_module()
class YOLOS(BaseDetector):
    """You Only Look at One Sequence (Fang et al., NeurIPS 2021).

    The ViT's [DET] tokens go straight into a DETR-style head; there is no
    neck and no decoder.

    Args:
        backbone (dict): ``YOLOSViT`` config.
        bbox_head (dict): ``YOLOSHead`` config; ``embed_dims`` defaults to
            the backbone's.
        train_cfg (dict, optional): Passed to the head when given (e.g. the
            assigner); otherwise the head keeps its own default.
        test_cfg (dict, optional): Passed to the head when given.
        data_preprocessor (dict, optional): e.g. ``DetDataPreprocessor``
            with ImageNet mean/std and ``bgr_to_rgb=True``.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 bbox_head: dict,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        bbox_head = copy.deepcopy(bbox_head)
        embed_dims = self.backbone.embed_dims
        if bbox_head.get('embed_dims', embed_dims) != embed_dims:
            raise ValueError(f'bbox_head.embed_dims '
                             f'({bbox_head["embed_dims"]}) differs from the '
                             f'backbone embed_dims ({embed_dims})')
        bbox_head['embed_dims'] = embed_dims
        if train_cfg is not None:
            bbox_head['train_cfg'] = train_cfg
        if test_cfg is not None:
            bbox_head['test_cfg'] = test_cfg
        self.bbox_head = MODELS.build(bbox_head)
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg

    def extract_feat(self, batch_inputs: Tensor) -> Tensor:
        """(B, 3, H, W) images -> [DET] tokens as one layer (1, B, T, D)."""
        return self.backbone(batch_inputs)[-1].unsqueeze(0)

    def loss(self, batch_inputs: Tensor,
             batch_data_samples: SampleList) -> dict:
        """Set-prediction losses ``loss_cls``, ``loss_bbox``, ``loss_iou``."""
        return self.bbox_head.loss(
            self.extract_feat(batch_inputs), batch_data_samples)

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Samples with ``pred_instances`` (bboxes x1y1x2y2 in original
        image pixels when ``rescale``, scores, labels)."""
        results = self.bbox_head.predict(
            self.extract_feat(batch_inputs),
            batch_data_samples,
            rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, results)

    def _forward(self,
                 batch_inputs: Tensor,
                 batch_data_samples: OptSampleList = None) -> Tuple[Tensor]:
        """Raw head outputs: logits (1, B, T, C+1), boxes (1, B, T, 4)."""
        return self.bbox_head.forward(self.extract_feat(batch_inputs))
