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

Token merging (``token_merge``, per stage) makes a block cheaper without
leaving the grid: after ``norm1`` the tokens of every stream are merged with
one shared map (:func:`~projects.fusion_math.token_merging.grid_matching`),
the attention queries, the fusion layers and the output projection run on
the merged tokens, keys and values come from the unmerged grid through
``sr``, and the attention output is copied back to the grid before the
residual add (optionally the Mix-FFN's linear layers too). The residual
stream, the patch embeddings, ``sr`` and the depthwise convs keep the full
grid.
"""
import contextlib
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import CheckpointLoader
from mmseg.registry import MODELS

from projects.fusion_math import token_merging as merging
from projects.fusion_math.modality_layers import (ModalityConv2d,
                                                  ModalityLayerNorm,
                                                  ModalityLinear,
                                                  split_modalities)
from ..fusion_layers.base import (FUSION_POINTS, FusionLayers, FusionSite,
                                  HostsFusionLayers, build_seg_module)
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

    def forward(self,
                x: torch.Tensor,
                hw: tuple,
                site: FusionSite,
                merge: Optional[merging.GridMerge] = None) -> torch.Tensor:
        """With ``merge`` the queries (and so the output) are the merged
        tokens (M*B, N', C); keys and values always come from the grid."""
        mb, _, c = x.shape
        heads = self.num_heads
        queries = x if merge is None else merging.grid_merge(merge, x)
        n = queries.shape[1]
        q = self.q(queries).reshape(mb, n, heads, c // heads).transpose(1, 2)
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

    def forward(self,
                x: torch.Tensor,
                hw: tuple,
                merge: Optional[merging.GridMerge] = None) -> torch.Tensor:
        """With ``merge``, fc1 and fc2 run on the merged tokens and the
        depthwise conv on the grid between them (copy-back, then the group
        means again)."""
        if merge is not None:
            x = merging.grid_unmerge(merge,
                                     self.fc1(merging.grid_merge(merge, x)))
        else:
            x = self.fc1(x)
        mb, n, c = x.shape
        x = self.dwconv(x.transpose(1, 2).reshape(mb, c, *hw))
        x = self.drop(F.gelu(x.flatten(2).transpose(1, 2)))
        if merge is not None:
            return merging.grid_unmerge(
                merge, self.drop(self.fc2(merging.grid_merge(merge, x))))
        return self.drop(self.fc2(x))


class BlockTokenMerge:
    """What ``FusedMiT(token_merge=[..., dict(...), ...])`` accepts for one
    stage.

    Args:
        ratio (float): Fraction of the tokens merged in every block of the
            stage, at most ``1 - 1 / (sy * sx)``. 0 merges nothing.
        stride (tuple[int, int]): Destination cells (sy, sx): one
            destination, the top-left token, per cell. Defaults to (2, 2).
        radius (int, optional): A token looks for its destination in its
            own and the surrounding ``radius`` cells; None: anywhere.
            Defaults to 1.
        merge_mlp (bool): Also run the Mix-FFN's fc1 / fc2 on the merged
            tokens. Defaults to False.
    """

    def __init__(self,
                 ratio: float = 0.5,
                 stride: Sequence[int] = (2, 2),
                 radius: Optional[int] = 1,
                 merge_mlp: bool = False) -> None:
        if len(stride) != 2 or min(stride) < 1:
            raise ValueError(f'token_merge stride must be (sy, sx) >= 1, got '
                             f'{stride!r}')
        self.stride = (int(stride[0]), int(stride[1]))
        merging.check_grid_ratio(ratio, self.stride)
        if radius is not None and radius < 0:
            raise ValueError(f'token_merge radius must be >= 0 or None, got '
                             f'{radius!r}')
        self.ratio, self.radius, self.merge_mlp = ratio, radius, merge_mlp

    def match(self, y: torch.Tensor, streams: int,
              hw: tuple) -> Optional[merging.GridMerge]:
        """One merge map for the stack y (S*B, N, C), or None (ratio 0)."""
        if not self.ratio:
            return None
        metric = y.reshape(streams, -1, *y.shape[1:])
        return merging.grid_matching(metric, hw, self.ratio, self.stride,
                                     self.radius)

    def __repr__(self) -> str:
        return (f'BlockTokenMerge(ratio={self.ratio}, stride={self.stride}, '
                f'radius={self.radius}, merge_mlp={self.merge_mlp})')


class FusedBlock(nn.Module):
    """A MiT block over the modality stack (S*B, N, C), calling the fusion
    points of its :class:`FusionSite` (see :mod:`..fusion_layers.base`)::

        begin_block(x)
        y = fuse_normed('norm1', norm1(x))
        a = fuse_attention_output(proj(fuse_attention_heads(heads(y))))
        x = x + drop_path(a)
        y = fuse_normed('norm2', norm2(x))
        x = end_block(x + drop_path(mlp(y)))

    With a :class:`BlockTokenMerge` (``token_merge``), the merge map of y
    is handed to the fusion layers (``site.merge_tokens``), ``heads``
    computes the merged queries, so ``fuse_attention_heads``, ``proj`` and
    ``fuse_attention_output`` see the merged tokens (S*B, N', C), and
    ``a`` is copied back to the grid before the residual add.
    """

    def __init__(self,
                 m: int,
                 dims: int,
                 num_heads: int,
                 sr_ratio: int,
                 mlp_ratio: int,
                 qkv_bias: bool,
                 drop_rate: float,
                 attn_drop_rate: float,
                 drop_path_rate: float,
                 share_attn: bool,
                 share_mlp: bool,
                 share_norms: bool,
                 token_merge: Optional[BlockTokenMerge] = None) -> None:
        super().__init__()
        self.streams = m
        self.token_merge = token_merge
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
        y = site.fuse_normed('norm1', self.norm1(x), self.norm1)
        merge = None if self.token_merge is None else \
            self.token_merge.match(y, self.streams, hw)
        if merge is not None:
            site.merge_tokens(merge)
        attn = site.fuse_attention_output(self.attn(y, hw, site, merge))
        if merge is not None:
            attn = merging.grid_unmerge(merge, attn)
        x = x + drop_path(attn, self.drop_path_rate, self.training)
        y = site.fuse_normed('norm2', self.norm2(x), self.norm2)
        mlp_merge = merge if merge is not None and \
            self.token_merge.merge_mlp else None
        x = x + drop_path(
            self.mlp(y, hw, mlp_merge), self.drop_path_rate, self.training)
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
        token_merge (Sequence[dict | None], optional): Token merging per
            stage, one entry per stage (None: not in that stage), each the
            arguments of :class:`BlockTokenMerge`, e.g.
            ``[None, None, dict(ratio=0.5), None]``. No parameters are
            added, so checkpoints load unchanged; ``ratio=0`` is the
            unmerged model bit for bit.
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
                 token_merge: Optional[Sequence[Optional[dict]]] = None,
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
        self.hub = build_seg_module(
            hub or dict(type='ModalityStreams'),
            num_modalities=num_modalities,
            channels=self.dims)
        self.num_streams = streams = self.hub.num_streams

        self.token_merge = self._stage_merges(token_merge, len(num_layers))
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
                               share_mlp, share_norms, self.token_merge[s])
                    for j in range(depth)
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

    @staticmethod
    def _stage_merges(cfg, num_stages: int) -> List[Optional[BlockTokenMerge]]:
        if cfg is None:
            return [None] * num_stages
        if isinstance(cfg, dict) or len(cfg) != num_stages:
            raise ValueError(f'token_merge must list one entry (a dict or '
                             f'None) per stage, {num_stages} in all, e.g. '
                             '[None, None, dict(ratio=0.5), None]; got '
                             f'{cfg!r}')
        stages = []
        for s, stage_cfg in enumerate(cfg):
            if stage_cfg is None:
                stages.append(None)
                continue
            try:
                stages.append(BlockTokenMerge(**stage_cfg))
            except (TypeError, ValueError) as exc:
                raise type(exc)(f'token_merge[{s}]: {exc}') from None
        return stages

    @property
    def merges_tokens(self) -> bool:
        """Whether some stage merges tokens (a ratio above 0)."""
        return any(m is not None and m.ratio for m in self.token_merge)

    @contextlib.contextmanager
    def scaled_token_merge(self, scale: float) -> Iterator[None]:
        """Within the context every stage merges ``scale`` x its ratio
        (0: nothing; the teacher pass of the merge-consistency training)."""
        if not 0 <= scale <= 1:
            raise ValueError(f'scale must be in [0, 1], got {scale}')
        stages = [m for m in self.token_merge if m is not None]
        ratios = [m.ratio for m in stages]
        try:
            for stage, ratio in zip(stages, ratios):
                stage.ratio = ratio * scale
            yield
        finally:
            for stage, ratio in zip(stages, ratios):
                stage.ratio = ratio

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
