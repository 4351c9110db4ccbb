"""The all-MLP decode head of NVlabs SegFormer, with its parameter names."""
from typing import List

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS


class LinearEmbed(nn.Module):
    """Per-pixel Linear (C_in -> E) on a (B, C_in, H, W) map; the
    parameter is called ``proj`` as in NVlabs' ``MLP``."""

    def __init__(self, in_channels: int, embed_dims: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_channels, embed_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        x = self.proj(x.flatten(2).transpose(1, 2))
        return x.transpose(1, 2).reshape(b, -1, h, w)


@MODELS.register_module()
class SegFormerMLPHead(BaseDecodeHead):
    """NVlabs SegFormer's head as TokenFusion uses it.

    ``linear_c1..4`` embed each level to ``channels`` (E) per pixel; c2-c4
    are upsampled (bilinear) to c1's size and concatenated as
    [c4, c3, c2, c1]; ``linear_fuse`` (1x1 conv without bias, BN, ReLU)
    fuses them; dropout; ``linear_pred`` (1x1 conv) classifies. Unlike
    mmseg's ``SegformerHead`` (ConvModules per level), these names and
    shapes load the reference checkpoints.

    Args:
        freeze_bn (bool): Keep ``linear_fuse``'s BN in eval mode during
            training, as the reference does (its statistics stay at their
            initial values and it acts as a learnable affine layer).
            Defaults to False.
        **kwargs: ``BaseDecodeHead`` arguments (``in_channels`` (4 values),
            ``channels`` = E (256 in TokenFusion), ``num_classes``, ...).
    """

    def __init__(self, freeze_bn: bool = False, **kwargs) -> None:
        kwargs.setdefault('input_transform', 'multiple_select')
        kwargs.setdefault('in_index', [0, 1, 2, 3])
        kwargs.setdefault(
            'init_cfg',
            dict(type='Normal', std=0.01, override=dict(name='linear_pred')))
        super().__init__(**kwargs)
        self.freeze_bn = freeze_bn
        for i, in_channels in enumerate(self.in_channels):
            self.add_module(f'linear_c{i + 1}',
                            LinearEmbed(in_channels, self.channels))
        self.linear_fuse = ConvModule(
            self.channels * len(self.in_channels),
            self.channels,
            1,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg)
        del self.conv_seg
        self.linear_pred = nn.Conv2d(self.channels, self.out_channels, 1)

    def forward(self, inputs: List[torch.Tensor]) -> torch.Tensor:
        return self.cls_seg(self.features(inputs))

    def features(self, inputs: List[torch.Tensor]) -> torch.Tensor:
        """The fused per-pixel features (B, E, h, w) before the classifier
        (``linear_fuse``'s output, at the first level's size)."""
        feats = self._transform_inputs(inputs)
        size = feats[0].shape[2:]
        embedded = [
            resize(
                getattr(self, f'linear_c{i + 1}')(x),
                size=size,
                mode='bilinear',
                align_corners=self.align_corners) if i else getattr(
                    self, f'linear_c{i + 1}')(x) for i, x in enumerate(feats)
        ]
        return self.linear_fuse(torch.cat(embedded[::-1], dim=1))

    def cls_seg(self, feat: torch.Tensor) -> torch.Tensor:
        if self.dropout is not None:
            feat = self.dropout(feat)
        return self.linear_pred(feat)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.freeze_bn:
            self.linear_fuse.bn.eval()
        return self
