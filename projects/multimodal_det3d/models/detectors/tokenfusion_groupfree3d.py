"""TokenFusion for 3D detection: GroupFree3D on points, fused with a YOLOS
ViT on one image (SUN RGB-D) or several posed views (ScanNetV2)."""
from typing import Dict, List, Optional

import torch
from mmdet3d.models.detectors import GroupFree3DNet
from mmdet3d.registry import MODELS
from mmdet3d.structures.det3d_data_sample import SampleList
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from torch import Tensor

from projects.fusion_math.token_exchange import score_statistics
from ...checks import check_point_clouds, sample_name
from ..fusion_layers.projection import (project_boxes_to_2d, seeds_to_patches,
                                        split_views)
from ..fusion_layers.seed_fusion import (SPARSITY_REDUCTIONS, SeedKeyFusion,
                                         gather_image_tokens,
                                         seed_sparsity_loss, visible_scores)


class ImageStream:
    """One forward of the ViT, advanced block by block by the point decoder.

    Before decoder layer ``i`` the ViT has run blocks
    ``[0, (i + 1) * blocks_per_layer)``; the seed keys are then fused with
    the patch tokens at that depth. When the ViT merges patch tokens
    (``token_merge``), a seed reads the merged token that holds its patch
    at that depth.
    """

    def __init__(self, detector: 'TokenFusionGroupFree3D', imgs: Tensor,
                 seed_xyz: Tensor, img_metas: List[dict]) -> None:
        self.detector = detector
        vit = detector.img_backbone
        self.num_views = imgs.shape[1] if imgs.dim() == 5 else 1
        self.tokens, self.grid_hw = vit.embed(imgs.flatten(0, -4))
        self.merge_state = vit.new_merge_state(self.tokens, self.grid_hw)
        self.depth = 0
        cfg = detector.fusion_cfg
        self.view, self.patch, self.valid = seeds_to_patches(
            seed_xyz,
            img_metas,
            patch_size=vit.patch_size,
            grid_hw=self.grid_hw,
            proj_key=cfg['proj_key'],
            pixel_origin=cfg['pixel_origin'],
            coord_type=cfg['coord_type'])
        self.scores: List[Tensor] = []

    def advance(self, stop: int) -> None:
        vit = self.detector.img_backbone
        stop = min(stop, vit.num_layers)
        if stop > self.depth:
            self.tokens = vit.forward_blocks(self.tokens, self.depth, stop,
                                             self.grid_hw, self.merge_state)
            self.depth = stop

    def fuse(self, layer: int, key: Tensor) -> Tensor:
        """Seed keys (S, B, C) before decoder layer ``layer`` -> fused."""
        detector = self.detector
        self.advance((layer + 1) * detector.fusion_cfg['blocks_per_layer'])
        patches = detector.img_backbone.patch_tokens(self.tokens)
        image_tokens = gather_image_tokens(patches, self.view,
                                           self.token_of_seed())
        if detector.fusion_cfg['detach_image']:
            image_tokens = image_tokens.detach()
        fused, scores = detector.seed_fusion(layer, key.permute(1, 0, 2),
                                             image_tokens, self.valid)
        self.scores.append(scores)
        return fused.permute(1, 0, 2)

    def token_of_seed(self) -> Tensor:
        """(B, S) index of the patch token each seed reads at the current
        depth: its patch, or the merged token holding it."""
        if self.merge_state is None:
            return self.patch
        rows = self.view + self.num_views * torch.arange(
            self.view.shape[0], device=self.view.device)[:, None]
        return self.merge_state.token_of_patch(rows, self.patch)

    def det_tokens(self) -> Tensor:
        """(B * V, T, D) detection tokens after the remaining blocks."""
        vit = self.detector.img_backbone
        self.advance(vit.num_layers)
        return vit.det_tokens(self.tokens)


@MODELS.register_module()
class TokenFusionGroupFree3D(GroupFree3DNet):
    """GroupFree3D whose seed keys take the image patch token under the seed
    when their score is low (TokenFusion, Wang et al., CVPR 2022, §3.3 of
    its 3D detection).

    Losses: ``loss_weight_3d`` x GroupFree3D's losses (mmdet3d's loss weights
    already carry the reference's factor 10) + ``loss_weight_2d`` x the YOLOS
    2D DETR losses while :attr:`img_loss_active` + ``sparsity_weight`` x the
    sparsity term on the scores of the seeds inside an image (see
    :func:`seed_sparsity_loss`) while the fusion is active.

    Schedules (the reference's 2D loss for the first 120 of 600 epochs, a
    fusion warm-up) are set on the model by :class:`TokenFusion3DHook`
    before every training iteration; without the hook the 2D loss is always
    on and the fusion always active.

    After every ``loss`` call :attr:`fusion_stats` holds, per decoder layer
    ``i``, over the seeds inside an image: the fraction replaced
    (``decoder<i>/replaced``; for the soft gate, scored below 0.5, with the
    mean image share in ``decoder<i>/image_share``) and their score mean /
    std / min / max; and the fraction of seeds inside an image
    (``visible``), for ``FusionStatsHook``.

    Args:
        backbone (dict): point backbone (PointNet2SASSG).
        bbox_head (dict): :class:`TokenFusionGroupFree3DHead`.
        img_backbone (dict): ``mmdet.YOLOSViT``.
        img_bbox_head (dict): ``mmdet.YOLOSHead`` for the 2D loss.
        fusion (dict): ``threshold`` (θ, 0.02), ``substitution`` ('hard',
            the reference; 'straight_through'; 'soft_gate'; see
            :mod:`..fusion_layers.seed_fusion`), ``blocks_per_layer`` (ViT
            blocks run before each decoder layer, 2), ``detach_image``
            (stop the 3D loss at the image tokens, as the reference, True),
            ``proj_key`` ('depth2img' for SUN RGB-D, 'lidar2img' for posed
            views), ``pixel_origin`` (1 for SUN RGB-D's MATLAB calibration,
            0 otherwise), ``coord_type`` ('DEPTH'), ``box_targets_2d``
            ('annotated': the samples' 2D boxes; 'projected': the 3D boxes
            projected into every view, for ScanNet).
        loss_weight_3d (float): w3d.
        loss_weight_2d (float): weight of the 2D losses while on.
        sparsity_weight (float): λ.
        sparsity_reduction (str): 'sum' (the reference) or 'mean'.
        sparsity_target_ratio (float, optional): ρ: hold the mean of
            ``1 - s`` at ρ instead of the l1 term.
    """

    def __init__(self,
                 backbone: dict,
                 bbox_head: dict,
                 img_backbone: dict,
                 img_bbox_head: Optional[dict] = None,
                 fusion: Optional[dict] = None,
                 loss_weight_3d: float = 1.0,
                 loss_weight_2d: float = 1.0,
                 sparsity_weight: float = 1e-3,
                 sparsity_reduction: str = 'sum',
                 sparsity_target_ratio: Optional[float] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg=None,
                 **kwargs) -> None:
        super().__init__(
            backbone=backbone,
            bbox_head=bbox_head,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            init_cfg=init_cfg,
            **kwargs)
        self.img_backbone = MODELS.build(img_backbone)
        self.img_bbox_head = (
            MODELS.build(img_bbox_head) if img_bbox_head else None)
        fusion = dict(fusion or {})
        layer_cfg = dict(
            threshold=fusion.pop('threshold', 0.02),
            substitution=fusion.pop('substitution', 'hard'))
        self.fusion_cfg = dict(
            blocks_per_layer=2,
            detach_image=True,
            proj_key='depth2img',
            pixel_origin=1.0,
            coord_type='DEPTH',
            box_targets_2d='annotated')
        unknown = set(fusion) - set(self.fusion_cfg)
        if unknown:
            raise KeyError(
                f'fusion: unknown keys {sorted(unknown)}; expected some of '
                f'{sorted(set(self.fusion_cfg) | set(layer_cfg))}')
        self.fusion_cfg.update(fusion)
        if self.fusion_cfg['box_targets_2d'] not in ('annotated', 'projected'):
            raise ValueError('fusion.box_targets_2d must be "annotated" or '
                             '"projected", got '
                             f'{self.fusion_cfg["box_targets_2d"]!r}')
        num_layers = self.bbox_head.num_decoder_layers
        needed = num_layers * self.fusion_cfg['blocks_per_layer']
        if needed > self.img_backbone.num_layers:
            raise ValueError(
                f'{num_layers} decoder layers x blocks_per_layer='
                f'{self.fusion_cfg["blocks_per_layer"]} need {needed} ViT '
                f'blocks, the image backbone has '
                f'{self.img_backbone.num_layers}')
        self.seed_fusion = SeedKeyFusion(num_layers, self.bbox_head.embed_dims,
                                         self.img_backbone.embed_dims,
                                         **layer_cfg)
        if sparsity_reduction not in SPARSITY_REDUCTIONS:
            raise ValueError(f'sparsity_reduction must be one of '
                             f'{SPARSITY_REDUCTIONS}, got '
                             f'{sparsity_reduction!r}')
        if sparsity_target_ratio is not None and \
                not 0 <= sparsity_target_ratio <= 1:
            raise ValueError('sparsity_target_ratio must be in [0, 1], got '
                             f'{sparsity_target_ratio!r}')
        self.loss_weight_3d = loss_weight_3d
        self.loss_weight_2d = loss_weight_2d
        self.sparsity_weight = sparsity_weight
        self.sparsity_reduction = sparsity_reduction
        self.sparsity_target_ratio = sparsity_target_ratio
        # set by TokenFusion3DHook
        self.img_loss_active = True
        self.fusion_stats: Dict[str, Tensor] = {}

    # ----------------------------------------------------------------- inputs
    def _fused_feats(self, batch_inputs_dict: dict,
                     batch_data_samples: SampleList):
        """Point backbone features, after checking the point clouds (the
        CUDA and CPU point ops do not), carrying the image stream's fusion
        callable for the head under ``'key_fusion'``."""
        if batch_data_samples is None:
            raise ValueError(
                'TokenFusionGroupFree3D needs the data samples in every mode, '
                "tensor mode included: the seeds are projected with each "
                "sample's calibration and augmentation record (metainfo). "
                'Pass data_samples, e.g. functools.partial(model.forward, '
                "data_samples=data['data_samples']) to count FLOPs, as "
                "mmdet's get_flops does.")
        check_point_clouds(batch_inputs_dict['points'],
                           [s.metainfo for s in batch_data_samples],
                           _first_sample_count(self.backbone))
        feats = self.extract_feat(batch_inputs_dict)
        stream = self._image_stream(batch_inputs_dict, feats,
                                    batch_data_samples)
        feats['key_fusion'] = stream.fuse
        return feats, stream

    def _image_stream(self, batch_inputs_dict: dict, feats: dict,
                      batch_data_samples: SampleList) -> ImageStream:
        imgs = batch_inputs_dict.get('imgs')
        if imgs is None:
            raise ValueError(
                'TokenFusionGroupFree3D needs images: the batch has no '
                "'imgs'. Load them in the pipeline (LoadImageFromFile for "
                'SUN RGB-D, LoadMultiViewPosedImages for ScanNet) and pack '
                "'img' (Pack3DDetInputs keys).")
        metas = [sample.metainfo for sample in batch_data_samples]
        proj_key = self.fusion_cfg['proj_key']
        for meta in metas:
            if meta.get(proj_key) is None:
                raise KeyError(
                    f'{sample_name(meta)}: no {proj_key!r} '
                    'calibration in its metainfo; the infos need it (SUN '
                    'RGB-D: images.CAM0.depth2img; ScanNet: run '
                    'tools/dataset_converters/scannet_posed_images.py)')
        seed_xyz = feats['fp_xyz'][-1]
        return ImageStream(self, imgs, seed_xyz, metas)

    def _image_loss_weight(self) -> float:
        if self.img_bbox_head is None or not self.img_loss_active:
            return 0.0
        return self.loss_weight_2d

    def _view_samples(self, batch_data_samples: SampleList,
                      num_views: int) -> List[DetDataSample]:
        """2D targets of every view, for the YOLOS loss."""
        if self.fusion_cfg['box_targets_2d'] == 'annotated':
            if num_views != 1:
                raise ValueError('annotated 2D boxes serve one image per '
                                 'sample; use box_targets_2d="projected" '
                                 'for multi-view inputs')
            return batch_data_samples
        samples = []
        proj_key = self.fusion_cfg['proj_key']
        for sample in batch_data_samples:
            gt = sample.gt_instances_3d
            for view_meta in split_views(sample.metainfo, proj_key):
                boxes, keep = project_boxes_to_2d(
                    gt.bboxes_3d,
                    view_meta,
                    proj_key=proj_key,
                    pixel_origin=self.fusion_cfg['pixel_origin'],
                    coord_type=self.fusion_cfg['coord_type'])
                instances = InstanceData(
                    bboxes=boxes[keep], labels=gt.labels_3d[keep])
                samples.append(
                    DetDataSample(
                        gt_instances=instances,
                        metainfo=dict(img_shape=view_meta['img_shape'])))
        return samples

    # ------------------------------------------------------------------ modes
    def loss(self, batch_inputs_dict: dict, batch_data_samples: SampleList,
             **kwargs) -> Dict[str, Tensor]:
        feats, stream = self._fused_feats(batch_inputs_dict,
                                          batch_data_samples)
        losses = self.bbox_head.loss(batch_inputs_dict['points'], feats,
                                     batch_data_samples, **kwargs)
        losses = {
            name: _scale(value, self.loss_weight_3d)
            for name, value in losses.items()
        }
        weight_2d = self._image_loss_weight()
        if weight_2d > 0:
            det_tokens = stream.det_tokens()
            samples = self._view_samples(batch_data_samples, stream.num_views)
            losses_2d = self.img_bbox_head.loss(det_tokens[None], samples)
            losses.update({
                f'img_{name}': _scale(value, weight_2d)
                for name, value in losses_2d.items()
            })
        if self.seed_fusion.active:
            losses['loss_sparsity'] = self.sparsity_weight * \
                seed_sparsity_loss(stream.scores, stream.valid,
                                   self.sparsity_reduction,
                                   self.sparsity_target_ratio)
        self.fusion_stats = self._fusion_statistics(stream)
        return losses

    def predict(self, batch_inputs_dict: dict, batch_data_samples: SampleList,
                **kwargs) -> SampleList:
        feats, _ = self._fused_feats(batch_inputs_dict, batch_data_samples)
        results = self.bbox_head.predict(batch_inputs_dict['points'], feats,
                                         batch_data_samples, **kwargs)
        return self.add_pred_to_datasample(batch_data_samples, results)

    def _forward(self,
                 batch_inputs_dict: dict,
                 batch_data_samples: Optional[SampleList] = None,
                 **kwargs):
        feats, _ = self._fused_feats(batch_inputs_dict, batch_data_samples)
        return self.bbox_head.forward(feats)

    def _fusion_statistics(self, stream: ImageStream) -> Dict[str, Tensor]:
        """The fraction of seeds inside an image (``visible``) and, per
        decoder layer, over those seeds: the fraction replaced (score below
        θ while the fusion is active), the soft gate's mean image share and
        the score statistics."""
        fusion = self.seed_fusion
        stats = {'visible': stream.valid.float().mean()}
        # the soft gate replaces nothing outright; its seeds count as
        # replaced where the image has the larger share
        threshold = 0.5 if fusion.substitution == 'soft_gate' else \
            fusion.threshold
        threshold = threshold if fusion.active else 0.0
        for i, scores in enumerate(stream.scores):
            values = visible_scores([scores.detach()], stream.valid)
            for name, value in score_statistics(values, threshold).items():
                name = 'replaced' if name == 'exchanged' else name
                stats[f'decoder{i}/{name}'] = value
            if fusion.substitution == 'soft_gate' and values.numel():
                share = (1 - values).mean() if fusion.active else \
                    values.new_zeros(())
                stats[f'decoder{i}/image_share'] = share
        return stats


def _first_sample_count(backbone) -> Optional[int]:
    """Points the first set-abstraction layer samples (PointNet2SASSG)."""
    modules = getattr(backbone, 'SA_modules', None)
    if not modules or modules[0].num_point is None:
        return None
    return sum(modules[0].num_point)


def _scale(value, weight: float):
    if isinstance(value, (list, tuple)):
        return type(value)(v * weight for v in value)
    return value * weight
