"""The benchmark's model zoo: a ``--models`` name -> the segmentor (or, for
``--backbone-only``, the backbone) that is measured.

Every model is MiT (``arch``) + the NVlabs SegFormer all-MLP head
(:class:`SegFormerMLPHead`) with the same E for every model:

* ``rgb`` / ``concat`` (one stream): mmseg's ``EncoderDecoder`` around
  ``FusedMiT(num_modalities=1)`` (3 / 6 input channels), the single-modal
  SegFormer a multimodal model is compared against: one CE loss, one
  prediction (a one-stream ``MultiStreamEncoderDecoder`` would add the CE
  of an "ensemble" of that one stream, which SegFormer does not compute);
* ``rgb-mmseg``: the same with mmseg's ``MixVisionTransformer``;
* ``tokenfusion-mN`` / ``geminifusion``: :class:`MultiStreamEncoderDecoder`
  around ``FusedMiT(num_modalities=N, fusion=dict(type='TokenExchange'))``
  / ``FusedMiT(num_modalities=2, fusion=dict(type='GeminiFusion',
  heads=8))``, as the configs build them;
* ``reference-mN``: the same ``MultiStreamEncoderDecoder`` whose backbone
  is :class:`ReferenceBackbone`, the ``tokenfusion-mN`` weights computed
  the way the reference code computes them.
"""
import logging
import re
from typing import Dict, List, Sequence, Tuple

import torch.nn as nn
from mmengine.config import ConfigDict
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from mmseg.models.segmentors import EncoderDecoder
from torch import Tensor

from projects.multimodal_seg.models import (MIT_ARCHS, FusedMiT,
                                            MultiStreamEncoderDecoder)
from tools.analysis_tools.reference_formulation import (
    ReferenceTokenFusionMiT, stack_outputs)

ALL_MODELS = ('rgb', 'rgb-mmseg', 'concat', 'tokenfusion-m2', 'tokenfusion-m3',
              'reference-m2', 'reference-m3', 'geminifusion')
DEFAULT_MODELS = ('rgb', 'concat', 'tokenfusion-m2', 'tokenfusion-m3',
                  'reference-m2', 'reference-m3', 'geminifusion')
# MiT's heads per stage; stage widths are embed_dims times these
MIT_NUM_HEADS = (1, 2, 5, 8)


def parse_model_name(name: str) -> Tuple[str, int, int]:
    """-> (kind, num_modalities, input channels)."""
    if name in ('rgb', 'rgb-mmseg'):
        return name, 1, 3
    if name == 'concat':
        return name, 1, 6
    if name == 'geminifusion':
        return name, 2, 6
    match = re.fullmatch(r'(tokenfusion|reference)-m(\d+)', name)
    if not match:
        raise ValueError(f'unknown model {name!r}')
    m = int(match.group(2))
    return match.group(1), m, 3 * m


def backbone_config(name: str, arch: str) -> dict:
    """The registry config of the backbone of model ``name`` (for
    ``reference-mN`` the ``FusedMiT`` whose weights it takes)."""
    kind, m, channels = parse_model_name(name)
    if kind == 'rgb-mmseg':
        preset = MIT_ARCHS[arch]
        return dict(
            type='MixVisionTransformer',
            in_channels=3,
            embed_dims=preset['embed_dims'],
            num_layers=list(preset['num_layers']),
            num_heads=list(MIT_NUM_HEADS),
            drop_path_rate=0.1)
    if kind == 'geminifusion':
        fusion = dict(type='GeminiFusion', heads=8)
    elif m > 1:  # the layer's defaults are the reference's recipe
        fusion = dict(type='TokenExchange')
    else:
        fusion = None
    return dict(
        type='FusedMiT',
        arch=arch,
        num_modalities=m,
        in_channels=channels // m,
        fusion=fusion)


def head_config(arch: str, head_channels: int, num_classes: int) -> dict:
    """SegFormer's all-MLP head on the four MiT stages of ``arch``."""
    return dict(
        type='SegFormerMLPHead',
        in_channels=[MIT_ARCHS[arch]['embed_dims'] * h for h in MIT_NUM_HEADS],
        channels=head_channels,
        num_classes=num_classes,
        dropout_ratio=0.1,
        norm_cfg=dict(type='BN', requires_grad=True),
        align_corners=False)


class ReferenceBackbone(nn.Module):
    """:class:`ReferenceTokenFusionMiT` behind the interface of the
    ``FusedMiT`` it was built from, so that
    :class:`MultiStreamEncoderDecoder` runs it unchanged.

    The reference's per-modality pyramids are stacked into (M*B, C, H, W)
    per level (:func:`stack_outputs`, one ``torch.cat`` per level that the
    reference code does not do; in exchange the head runs once on the
    stack instead of once per modality), and its scores are handed to the
    fused model's ``TokenExchange`` layer, whose own ``loss`` /
    ``statistics`` give :meth:`fusion_loss` / :meth:`fusion_statistics`.

    Args:
        fused (FusedMiT): Shared attention / Mix-FFN, per-modality norms,
            one ``TokenExchange(variant='attention')`` layer.
    """

    def __init__(self, fused: FusedMiT) -> None:
        super().__init__()
        self.reference = ReferenceTokenFusionMiT.from_fused(fused)
        self.num_modalities = fused.num_modalities
        self.num_streams = fused.num_streams
        # Held in a tuple, out of the module tree: the layer's score
        # predictors are copies of the reference's ``score_predictor`` and
        # must be neither counted, trained nor moved; only its loss and
        # statistics code (no parameters) is used.
        self._fusion_layers = (fused.fusion_layers, )

    @property
    def fusion_layers(self) -> nn.ModuleList:
        """The fused model's fusion layers (one ``TokenExchange``), which
        record the reference's scores."""
        return self._fusion_layers[0]

    def forward(self, x: Tensor) -> List[Tensor]:
        pyramids, scores = self.reference(x)
        feats, stacked_scores = stack_outputs(pyramids, scores)
        exchange = self.fusion_layers[0]
        exchange.scores = stacked_scores
        exchange.score_blocks = exchange.block_names
        return feats

    def fusion_loss(self) -> Dict[str, Tensor]:
        return self.fusion_layers.loss()

    def fusion_statistics(self,
                          stream_names: Sequence[str]) -> Dict[str, Tensor]:
        return self.fusion_layers.statistics(stream_names)


def build_model(name: str,
                arch: str,
                head_channels: int = 256,
                num_classes: int = 40,
                backbone: bool = False) -> nn.Module:
    """The benchmarked segmentor of model ``name`` (see the module doc),
    initialised as in training from scratch (``init_weights``);
    ``backbone=True``: its backbone only."""
    kind, m, _ = parse_model_name(name)
    segmentor_type = MultiStreamEncoderDecoder if m > 1 else EncoderDecoder
    # the sub-modules come from mmseg's registries whatever scope the
    # caller (a test process that built mmdet3d models before) left set
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = segmentor_type(
            backbone=backbone_config(name, arch),
            decode_head=head_config(arch, head_channels, num_classes),
            # read by attribute, as the config system's ConfigDicts allow
            test_cfg=ConfigDict(mode='whole'))
    # mmengine logs every parameter's initialiser from a top-level
    # ``init_weights``: thousands of lines per worker process
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    if kind == 'reference':
        model.backbone = ReferenceBackbone(model.backbone)
    return model.backbone if backbone else model
