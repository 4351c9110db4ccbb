"""The fused Mix Vision Transformer (SegFormer encoder) over a modality
stack, with pluggable fusion layers.

All modalities run through one MiT whose conv and linear weights are shared
(patch embeddings, attention q / kv / proj / sr, Mix-FFN fc1 / dwconv /
fc2) while every LayerNorm has one affine transform per modality. The
modalities are stacked into the batch dimension, so every shared layer runs
once on the (M*B) stack; only the norms and the fusion layers look at the
modality axis. How the streams meet is up to the fusion layers built from
the ``fusion`` config (:mod:`..fusion_layers`), how many streams the blocks
run up to the ``hub`` (one per modality, or two behind an
:class:`~..fusion_layers.AuxiliaryHub`).
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import CheckpointLoader
from mmseg.registry import MODELS

from projects.fusion_math.modality_layers import (ModalityConv2d,
                                                  ModalityLayerNorm,
                                                  ModalityLinear,
                                                  split_modalities)
from ..fusion_layers.base import (FUSION_POINTS, FusionLayers, FusionSite,
                                  HostsFusionLayers)
from .mit_checkpoint import mit_to_fused

# SegFormer presets (embed_dims of stage 1, blocks per stage)
MIT_ARCHS = {
    'b0': dict(embed_dims=32, num_layers=(2, 2, 2, 2)),
    'b1': dict(embed_dims=64, num_layers=(2, 2, 2, 2)),
    'b2': dict(embed_dims=64, num_layers=(3, 4, 6, 3)),
    'b3': dict(embed_dims=64, num_layers=(3, 4, 18, 3)),
    'b4': dict(embed_dims=64, num_layers=(3, 8, 27, 3)),
    'b5': dict(embed_dims=64, num_layers=(3, 6, 40, 3)),
}
# keys that a single-modal MiT checkpoint cannot provide
_NOT_IN_SINGLE_MIT = ('fusion_layers.', 'hub.')


def drop_path(x: torch.Tensor, prob: float, training: bool) -> torch.Tensor:
    """Stochastic depth with an independent draw per row, i.e. per image
    and modality of the stack."""
    if prob == 0. or not training:
        return x
    keep = x.new_empty((x.shape[0], ) + (1, ) * (x.ndim - 1)).bernoulli_(1 -
                                                                         prob)
    return x * keep / (1 - prob)


class OverlapPatchEmbed(nn.Module):
    """Shared overlapping patch embedding conv + per-modality LayerNorm.

    (M*B, C_in, H, W) -> tokens (M*B, H'*W', C), (H', W').
    """

    def __init__(self, m: int, in_channels: int, embed_dims: int,
                 patch_size: int, stride: int, share_norms: bool) -> None:
        super().__init__()
        self.proj = ModalityConv2d(
            m,
            in_channels,
            embed_dims,
            patch_size,
            stride=stride,
            padding=patch_size // 2)
        self.norm = ModalityLayerNorm(m, embed_dims, shared=share_norms)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, tuple]:
        x = self.proj(x)
        hw = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), hw


class EfficientAttention(nn.Module):
    """MiT's spatial-reduction attention with ``scaled_dot_product_attention``.

    Keys and values come from the tokens reduced by a ``sr x sr`` conv and
    a per-modality LayerNorm. (M*B, N, C) -> (M*B, N, C). The heads' output
    passes the fusion point ``fuse_attention_heads`` before the output
    projection.
    """

    def __init__(self, m: int, dims: int, num_heads: int, sr_ratio: int,
                 qkv_bias: bool, attn_drop: float, proj_drop: float,
                 shared: bool, share_norms: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.q = ModalityLinear(m, dims, dims, qkv_bias, shared)
        self.kv = ModalityLinear(m, dims, 2 * dims, qkv_bias, shared)
        self.proj = ModalityLinear(m, dims, dims, True, shared)
        self.proj_drop = nn.Dropout(proj_drop)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = ModalityConv2d(
                m, dims, dims, sr_ratio, stride=sr_ratio, shared=shared)
            self.norm = ModalityLayerNorm(m, dims, shared=share_norms)

    def forward(self, x: torch.Tensor, hw: tuple,
                site: FusionSite) -> torch.Tensor:
        mb, n, c = x.shape
        heads = self.num_heads
        q = self.q(x).reshape(mb, n, heads, c // heads).transpose(1, 2)
        if self.sr_ratio > 1:
            reduced = x.transpose(1, 2).reshape(mb, c, *hw)
            reduced = self.sr(reduced).flatten(2).transpose(1, 2)
            reduced = self.norm(reduced)
        else:
            reduced = x
        kv = self.kv(reduced).reshape(mb, -1, 2, heads, c // heads)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.)
        out = site.fuse_attention_heads(out.transpose(1, 2).reshape(mb, n, c))
        return self.proj_drop(self.proj(out))


class MixFFN(nn.Module):
    """fc1 -> 3x3 depthwise conv -> GELU -> fc2, weights shared or not."""

    def __init__(self, m: int, dims: int, hidden: int, drop: float,
                 shared: bool) -> None:
        super().__init__()
        self.fc1 = ModalityLinear(m, dims, hidden, shared=shared)
        self.dwconv = ModalityConv2d(
            m, hidden, hidden, 3, padding=1, groups=hidden, shared=shared)
        self.fc2 = ModalityLinear(m, hidden, dims, shared=shared)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor, hw: tuple) -> torch.Tensor:
        x = self.fc1(x)
        mb, n, c = x.shape
        x = self.dwconv(x.transpose(1, 2).reshape(mb, c, *hw))
        x = F.gelu(x.flatten(2).transpose(1, 2))
        return self.drop(self.fc2(self.drop(x)))


class FusedBlock(nn.Module):
    """A MiT block over the modality stack (S*B, N, C), calling the fusion
    points of its :class:`FusionSite` (see :mod:`..fusion_layers.base`)::

        begin_block(x)
        y = fuse_normed('norm1', norm1(x))
        a = fuse_attention_output(proj(fuse_attention_heads(heads(y))))
        x = x + drop_path(a)
        y = fuse_normed('norm2', norm2(x))
        x = end_block(x + drop_path(mlp(y)))
    """

    def __init__(self, m: int, dims: int, num_heads: int, sr_ratio: int,
                 mlp_ratio: int, qkv_bias: bool, drop_rate: float,
                 attn_drop_rate: float, drop_path_rate: float,
                 share_attn: bool, share_mlp: bool, share_norms: bool) -> None:
        super().__init__()
        self.drop_path_rate = drop_path_rate
        self.norm1 = ModalityLayerNorm(m, dims, shared=share_norms)
        self.attn = EfficientAttention(m, dims, num_heads, sr_ratio, qkv_bias,
                                       attn_drop_rate, drop_rate, share_attn,
                                       share_norms)
        self.norm2 = ModalityLayerNorm(m, dims, shared=share_norms)
        self.mlp = MixFFN(m, dims, dims * mlp_ratio, drop_rate, share_mlp)

    def forward(self, x: torch.Tensor, hw: tuple,
                site: FusionSite) -> torch.Tensor:
        site.begin_block(x, hw)
        attn = self.attn(
            site.fuse_normed('norm1', self.norm1(x), self.norm1), hw, site)
        attn = site.fuse_attention_output(attn)
        x = x + drop_path(attn, self.drop_path_rate, self.training)
        y = site.fuse_normed('norm2', self.norm2(x), self.norm2)
        x = x + drop_path(self.mlp(y, hw), self.drop_path_rate, self.training)
        return site.end_block(x)


@MODELS.register_module()
class FusedMiT(HostsFusionLayers, BaseModule):
    """Multimodal Mix Vision Transformer with pluggable fusion layers.

    Input: (B, M * in_channels, H, W), the modalities concatenated along
    channels as ``MultiModalSegDataPreProcessor`` produces them (RGB-D with
    tiled depth: 6 channels). Output: a list of 4 feature maps
    (S*B, C_s, H / 4 / 2^s, W / 4 / 2^s), stream m at rows m*B..(m+1)*B, as
    :class:`~..segmentors.MultiStreamEncoderDecoder` reads them.

    Examples of ``fusion``::

        dict(type='TokenExchange', threshold=0.02)      # TokenFusion
        dict(type='GeminiFusion', heads=8)              # GeminiFusion
        [dict(type='TokenExchange'),                    # TokenFusion +
         dict(type='ChannelExchange', sparsity_weight=1e-3)]  # channels
        None                                            # shared streams,
                                                        # no fusion

    Args:
        arch (str): SegFormer preset ``'b0'`` .. ``'b5'`` for
            ``embed_dims`` and ``num_layers`` (explicit values win).
        num_modalities (int): M. Defaults to 2.
        in_channels (int): Channels of one modality. Defaults to 3.
        num_heads, patch_sizes, strides, sr_ratios, mlp_ratio, qkv_bias,
        drop_rate, attn_drop_rate, drop_path_rate, out_indices: as mmseg's
            ``MixVisionTransformer``.
        fusion (dict | list[dict], optional): Fusion layer config(s), see
            :mod:`..fusion_layers`; every fusion point is hosted. Their
            ``num_streams``, ``channels`` and ``depths`` are set here.
        hub (dict, optional): How M modalities become the streams the
            blocks run: None for one stream per modality, or
            ``dict(type='AuxiliaryHub')`` (GeminiFusion's DeLiVER branch,
            M > 2): two streams, the first modality and the aggregated
            auxiliaries.
        share_attn, share_mlp (bool): Share attention / Mix-FFN weights
            across streams (True) or keep one set per stream (TokenFusion
            Table 8).
        share_norms (bool): One LayerNorm for all streams instead of one per
            stream (Table 8). Defaults to False.
        init_cfg (dict, optional): ``dict(type='Pretrained',
            checkpoint=...)`` with an NVlabs ``mit_b*.pth``, an
            mmseg-converted MiT, a checkpoint of this model or of a whole
            segmentor.
    """

    def __init__(self,
                 arch: str = 'b2',
                 num_modalities: int = 2,
                 in_channels: int = 3,
                 embed_dims: Optional[int] = None,
                 num_layers: Optional[Sequence[int]] = None,
                 num_heads: Sequence[int] = (1, 2, 5, 8),
                 patch_sizes: Sequence[int] = (7, 3, 3, 3),
                 strides: Sequence[int] = (4, 2, 2, 2),
                 sr_ratios: Sequence[int] = (8, 4, 2, 1),
                 mlp_ratio: int = 4,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 fusion: Union[None, dict, Sequence[dict]] = None,
                 hub: Optional[dict] = None,
                 share_attn: bool = True,
                 share_mlp: bool = True,
                 share_norms: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if arch not in MIT_ARCHS:
            raise ValueError(f'arch must be one of {sorted(MIT_ARCHS)}, got '
                             f'{arch!r}')
        embed_dims = embed_dims or MIT_ARCHS[arch]['embed_dims']
        num_layers = tuple(num_layers or MIT_ARCHS[arch]['num_layers'])
        self.num_modalities = num_modalities
        self.in_channels = in_channels
        self.out_indices = tuple(out_indices)
        self.dims = [embed_dims * h for h in num_heads]
        self.depths = num_layers
        self.hub = MODELS.build(
            hub or dict(type='ModalityStreams'),
            default_args=dict(
                num_modalities=num_modalities, channels=self.dims))
        self.num_streams = streams = self.hub.num_streams

        rates = torch.linspace(0, drop_path_rate, sum(num_layers)).tolist()
        cursor = 0
        for s, depth in enumerate(num_layers):
            self.add_module(
                f'patch_embed{s + 1}',
                OverlapPatchEmbed(num_modalities,
                                  in_channels if s == 0 else self.dims[s - 1],
                                  self.dims[s], patch_sizes[s], strides[s],
                                  share_norms))
            self.add_module(
                f'block{s + 1}',
                nn.ModuleList([
                    FusedBlock(streams, self.dims[s], num_heads[s],
                               sr_ratios[s], mlp_ratio, qkv_bias, drop_rate,
                               attn_drop_rate, rates[cursor + j], share_attn,
                               share_mlp, share_norms) for j in range(depth)
                ]))
            self.add_module(
                f'norm{s + 1}',
                ModalityLayerNorm(streams, self.dims[s], shared=share_norms))
            cursor += depth
        self.fusion_layers = FusionLayers(
            fusion,
            host=type(self).__name__,
            hosted_points=FUSION_POINTS,
            num_streams=streams,
            channels=self.dims,
            depths=num_layers)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = split_modalities(x, self.num_modalities, self.in_channels)
        self.fusion_layers.begin_forward()
        outs = []
        last = len(self.dims) - 1
        for s in range(len(self.dims)):
            x, hw = getattr(self, f'patch_embed{s + 1}')(x)
            x, carry = self.hub.enter_stage(s, x, hw)
            for j, block in enumerate(getattr(self, f'block{s + 1}')):
                x = block(x, hw, self.fusion_layers.site(s, j))
            x = getattr(self, f'norm{s + 1}')(x)
            if s in self.out_indices:
                outs.append(x.transpose(1, 2).reshape(x.shape[0], -1, *hw))
            if s < last:
                x = self.hub.leave_stage(s, x, carry)
                x = x.transpose(1, 2).reshape(x.shape[0], -1, *hw)
        return outs

    def init_weights(self) -> None:
        """MiT's initialisation (as mmseg / NVlabs SegFormer) of every
        modality layer, the backbone's and then the fusion layers', then
        the checkpoint of a ``Pretrained`` ``init_cfg``."""
        for module in self.modules():
            if isinstance(module, ModalityLinear):
                nn.init.trunc_normal_(module.weight, std=.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, ModalityLayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, ModalityConv2d):
                fan_out = (
                    module.weight.shape[-1]**2 * module.out_channels //
                    module.groups)
                nn.init.normal_(module.weight, 0, (2.0 / fan_out)**0.5)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        if self.init_cfg is not None and self.init_cfg.get(
                'type') == 'Pretrained':
            self.load_mit_checkpoint(self.init_cfg['checkpoint'])

    def load_mit_checkpoint(self, path: str) -> None:
        """Initialise from an ImageNet MiT (NVlabs ``mit_b*.pth`` or
        mmseg-converted) or from a checkpoint of this model (also inside a
        whole segmentor's): shared layers get the single weights, each
        stream's norms start as copies of the single norm; fusion layers
        and hub keep their own initialisation unless the checkpoint has
        them.

        With the auxiliary hub all M patch-embed norm copies get the
        ImageNet norm (the DeLiVER reference's expansion only fills the
        first two, ``ln_0`` / ``ln_1``, and leaves the others at 1 / 0).

        Raises:
            KeyError: Checkpoint tensors without a place here, or backbone
                tensors (other than fusion layers and hub) it lacks.
        """
        checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu')
        converted = mit_to_fused(checkpoint, self.state_dict(), source=path)
        missing, unexpected = self.load_state_dict(converted, strict=False)
        missing = [k for k in missing if not k.startswith(_NOT_IN_SINGLE_MIT)]
        if missing or unexpected:
            raise KeyError(
                f'{path} does not fit {type(self).__name__}: missing '
                f'{missing[:8]}, unexpected {unexpected[:8]}')
        print_log(
            f'{type(self).__name__}: initialised from {path} '
            f'({len(converted)} tensors)',
            logger='current')
