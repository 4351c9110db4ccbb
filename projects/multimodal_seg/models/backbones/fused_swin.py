"""A Swin Transformer over a modality stack, composed from mmseg's Swin,
with pluggable fusion layers (GeminiFusion's Swin backbone).

All modalities run through one mmseg ``SwinTransformer``: they are stacked
into the batch dimension (M*B rows, modality m at rows m*B..(m+1)*B), so
the patch-embedding conv, every block (norm1, window attention with its
relative position bias and projection, norm2, MLP) and every PatchMerging
run once on the stack with shared weights. Modality-specific are only the
patch-embedding LayerNorm and the four output norms (``ModalityLayerNorm``,
eps 1e-6 as the reference's ``LayerNormParallel``); the block and merging
LayerNorms are shared (eps 1e-5), as in the reference.

The one fusion point hosted is ``fuse_attention_output``: the
window-attention output after window reverse, un-shift and crop, before
DropPath and the residual (where GeminiFusion's reference puts its module,
W-MSA and SW-MSA blocks alike). mmseg's ``ShiftWindowMSA.forward`` ends
with ``x = self.drop(x)`` (its DropPath); in every block a fusion layer
acts in, ``drop`` is replaced by :class:`FuseThenDropPath` (the fusion
point, then the original DropPath), which puts the fusion exactly there
without touching mmseg's forward code.
"""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader
from mmseg.models.backbones.swin import SwinTransformer
from mmseg.registry import MODELS

from projects.common.checkpoint import unwrap_state_dict
from projects.fusion_math.modality_layers import (ModalityLayerNorm,
                                                  split_modalities)
from ..fusion_layers.base import FusionLayers, FusionSite, HostsFusionLayers
from .swin_checkpoint import swin_to_mmseg

# Swin presets: stage-1 dims, blocks and heads per stage, window, the
# pretraining resolution of the official ImageNet weights
SWIN_ARCHS = {
    'swin-t':
    dict(
        embed_dims=96,
        depths=(2, 2, 6, 2),
        num_heads=(3, 6, 12, 24),
        window_size=7,
        pretrain_img_size=224),
    'swin-s':
    dict(
        embed_dims=96,
        depths=(2, 2, 18, 2),
        num_heads=(3, 6, 12, 24),
        window_size=7,
        pretrain_img_size=224),
    'swin-b':
    dict(
        embed_dims=128,
        depths=(2, 2, 18, 2),
        num_heads=(4, 8, 16, 32),
        window_size=7,
        pretrain_img_size=224),
    'swin-l':
    dict(
        embed_dims=192,
        depths=(2, 2, 18, 2),
        num_heads=(6, 12, 24, 48),
        window_size=7,
        pretrain_img_size=224),
    'swin-l-w12':
    dict(
        embed_dims=192,
        depths=(2, 2, 18, 2),
        num_heads=(6, 12, 24, 48),
        window_size=12,
        pretrain_img_size=384),
}
# the fusion points a FusedSwin block calls
SWIN_FUSION_POINTS = ('fuse_attention_output', )


def resize_relative_position_table(table: torch.Tensor,
                                   length: int) -> torch.Tensor:
    """Bicubic resize of a relative position bias table, as mmseg's and the
    reference's Swin loaders do when the window size differs.

    table: ((2w-1)^2, heads) -> (length, heads), length = (2w'-1)^2.
    """
    old, heads = table.shape
    side, new_side = round(old**0.5), round(length**0.5)
    if side * side != old or new_side * new_side != length:
        raise ValueError(f'relative position tables must be square: '
                         f'{old} -> {length} rows')
    if old == length:
        return table
    grid = table.transpose(0, 1).reshape(1, heads, side, side)
    grid = F.interpolate(grid, size=(new_side, new_side), mode='bicubic')
    return grid.reshape(heads, length).transpose(0, 1).contiguous()


class FuseThenDropPath(nn.Module):
    """Takes the place of ``ShiftWindowMSA.drop``: the block's fusion point
    ``fuse_attention_output`` on the window-attention output (S*B, N, C),
    then the block's original DropPath (``drop_path``). The site is a
    plain object: the fusion layers stay owned by the backbone."""

    def __init__(self, site: FusionSite, drop_path: nn.Module) -> None:
        super().__init__()
        self.site = site
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop_path(self.site.fuse_attention_output(x))

    def extra_repr(self) -> str:
        return (
            f'stage={self.site.stage}, block={self.site.block}, '
            f'layers={[type(layer).__name__ for layer in self.site.layers]}')


@MODELS.register_module()
class FusedSwin(HostsFusionLayers, SwinTransformer):
    """mmseg's ``SwinTransformer`` over a modality stack, with pluggable
    fusion layers.

    Shared weights for all modalities, per-modality patch-embedding and
    output LayerNorms, and the fusion point ``fuse_attention_output`` in
    every block a fusion layer acts in (between the window attention, after
    window reverse / un-shift / crop, and DropPath + residual). The
    GeminiFusion backbone of the reference is
    ``fusion=dict(type='GeminiFusion', heads=8,
    point='fuse_attention_output')``; with ``fusion=None`` it is a plain
    shared dual-stream Swin (each modality runs the same Swin with its own
    patch-embedding and output norms); with ``num_modalities=1`` and no
    fusion it computes exactly mmseg's Swin (norm eps aside).

    Input: (B, M * in_channels, H, W), the modalities concatenated along
    channels as ``MultiModalSegDataPreProcessor`` packs them. Output: 4
    maps (M*B, C_s, H/4/2^s, W/4/2^s), modality m at rows m*B..(m+1)*B, as
    :class:`~..segmentors.MultiStreamEncoderDecoder` reads them.

    Args:
        arch (str): Preset, one of :data:`SWIN_ARCHS` (``'swin-t'``,
            ``'swin-s'``, ``'swin-b'``, ``'swin-l'``, ``'swin-l-w12'``);
            ``embed_dims``, ``depths``, ``num_heads``, ``window_size`` and
            ``pretrain_img_size`` override it.
        num_modalities (int): M. Defaults to 2.
        in_channels (int): Channels of one modality. Defaults to 3.
        fusion (dict | list[dict], optional): Fusion layer config(s), see
            :mod:`..fusion_layers`; the only point hosted is
            ``fuse_attention_output``.
        modality_norm_eps (float): eps of the per-modality norms. Defaults
            to 1e-6 (the reference's ``LayerNormParallel``).
        mlp_ratio, strides, out_indices, qkv_bias, qk_scale, drop_rate,
        attn_drop_rate, drop_path_rate, with_cp, frozen_stages: as mmseg's
            ``SwinTransformer`` (patch norm on, no absolute position
            embedding, as every official Swin).
        init_cfg (dict, optional): ``dict(type='Pretrained',
            checkpoint=...)``: an official Microsoft ImageNet Swin file, an
            mmseg-converted Swin (also a whole mmseg segmentor checkpoint:
            its ``backbone.*``) or a checkpoint of this backbone. Shared
            layers get the single-stream weights; relative position tables
            are resized (bicubic) to the window size; fusion layers keep
            their initialisation unless the checkpoint has them. As the
            reference (``mmcv_custom.load_checkpoint``, whose aliases never
            match ``ln_0`` / ``ln_1``), the per-modality patch-embedding
            and output norms are *not* taken from a single-stream
            checkpoint: they keep ones / zeros.
    """

    def __init__(self,
                 arch: str = 'swin-t',
                 num_modalities: int = 2,
                 in_channels: int = 3,
                 embed_dims: Optional[int] = None,
                 depths: Optional[Sequence[int]] = None,
                 num_heads: Optional[Sequence[int]] = None,
                 window_size: Optional[int] = None,
                 pretrain_img_size: Optional[int] = None,
                 mlp_ratio: int = 4,
                 strides: Sequence[int] = (4, 2, 2, 2),
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 qkv_bias: bool = True,
                 qk_scale: Optional[float] = None,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.2,
                 fusion: Union[None, dict, Sequence[dict]] = None,
                 modality_norm_eps: float = 1e-6,
                 with_cp: bool = False,
                 frozen_stages: int = -1,
                 init_cfg: Optional[dict] = None) -> None:
        if arch not in SWIN_ARCHS:
            raise ValueError(f'arch must be one of {sorted(SWIN_ARCHS)}, '
                             f'got {arch!r}')
        if init_cfg is not None and init_cfg.get('type') != 'Pretrained':
            raise ValueError(f"init_cfg must be dict(type='Pretrained', "
                             f'checkpoint=...) or None, got {init_cfg}')
        preset = SWIN_ARCHS[arch]
        depths = tuple(depths or preset['depths'])
        num_heads = tuple(num_heads or preset['num_heads'])
        super().__init__(
            pretrain_img_size=pretrain_img_size or preset['pretrain_img_size'],
            in_channels=in_channels,
            embed_dims=embed_dims or preset['embed_dims'],
            patch_size=strides[0],
            window_size=window_size or preset['window_size'],
            mlp_ratio=mlp_ratio,
            depths=depths,
            num_heads=num_heads,
            strides=strides,
            out_indices=tuple(out_indices),
            qkv_bias=qkv_bias,
            qk_scale=qk_scale,
            patch_norm=True,
            drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate,
            drop_path_rate=drop_path_rate,
            use_abs_pos_embed=False,
            with_cp=with_cp,
            frozen_stages=frozen_stages,
            init_cfg=init_cfg)
        m = num_modalities
        self.num_modalities = m
        self.num_streams = m
        self.in_channels = in_channels
        self.window_size = window_size or preset['window_size']
        self.patch_embed.norm = ModalityLayerNorm(
            m, self.num_features[0], eps=modality_norm_eps)
        for i in self.out_indices:
            self.add_module(
                f'norm{i}',
                ModalityLayerNorm(
                    m, self.num_features[i], eps=modality_norm_eps))
        self.fusion_layers = FusionLayers(
            fusion,
            host=type(self).__name__,
            hosted_points=SWIN_FUSION_POINTS,
            num_streams=m,
            channels=self.num_features,
            depths=depths)
        for i, j in self.fusion_layers.blocks:
            attn = self.stages[i].blocks[j].attn
            attn.drop = FuseThenDropPath(
                self.fusion_layers.site(i, j), attn.drop)

    def train(self, mode: bool = True) -> 'FusedSwin':
        # mmseg's SwinTransformer.train returns None; nn.Module returns self
        super().train(mode)
        return self

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = split_modalities(x, self.num_modalities, self.in_channels)
        self.fusion_layers.begin_forward()
        return super().forward(x)

    def init_weights(self) -> None:
        """mmseg's Swin initialisation (truncated normal Linear layers,
        fusion layers' included, which is also GeminiFusion's init of its
        Linear layers), or the checkpoint of a ``Pretrained``
        ``init_cfg``."""
        if self.init_cfg is None:
            super().init_weights()
        else:
            self.load_swin_checkpoint(self.init_cfg['checkpoint'])

    def load_swin_checkpoint(self, path: str) -> None:
        """Initialise from an ImageNet Swin (Microsoft or mmseg names) or a
        checkpoint of this backbone (see the class doc for what is loaded).

        Raises:
            KeyError: Checkpoint tensors this backbone lacks, or backbone
                tensors (other than fusion layers and per-modality norms)
                the checkpoint lacks.
            ValueError: Tensors whose shapes do not fit.
        """
        checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu')
        state = swin_to_mmseg(unwrap_state_dict(checkpoint, path))
        own = self.state_dict()
        modality_norms = {
            f'{name}.{p}'
            for name, module in self.named_modules()
            if isinstance(module, ModalityLayerNorm)
            for p in ('weight', 'bias')
        }
        loaded = {}
        for key, value in state.items():
            if key.endswith('relative_position_index'):
                continue  # a function of the window size, kept as built
            if key.endswith('relative_position_bias_table') and key in own:
                value = resize_relative_position_table(value,
                                                       own[key].shape[0])
            if key in modality_norms and value.dim() == 1:
                continue  # single-stream norm: default init, as reference
            if key in own and own[key].shape != value.shape:
                raise ValueError(
                    f'{path}: {key} has shape {tuple(value.shape)}, '
                    f'{type(self).__name__} expects {tuple(own[key].shape)}')
            loaded[key] = value
        missing, unexpected = self.load_state_dict(loaded, strict=False)
        missing = [
            k for k in missing
            if not k.startswith('fusion_layers.') and k not in modality_norms
            and not k.endswith('relative_position_index')
        ]
        if missing or unexpected:
            raise KeyError(
                f'{path} does not fit {type(self).__name__}: missing '
                f'{missing[:8]} ({len(missing)}), unexpected '
                f'{unexpected[:8]} ({len(unexpected)})')
        print_log(
            f'{type(self).__name__}: initialised from {path} '
            f'({len(loaded)} tensors; per-modality norms are loaded only '
            'from multi-modal checkpoints)',
            logger='current')
