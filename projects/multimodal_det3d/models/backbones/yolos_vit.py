"""YOLOS image backbone: a plain DeiT-style ViT with detection tokens.

The sequence is ``[cls | h*w patch tokens | T det tokens]``; parameter names
follow DeiT/timm (``patch_embed.proj``, ``blocks.{i}.attn.qkv``, ...) so
ImageNet DeiT checkpoints and YOLOS COCO checkpoints load directly. Besides
the plain ``forward`` the module exposes a stepwise API (``embed``,
``forward_blocks``, ``patch_tokens``, ``det_tokens``) because the TokenFusion
3D detector interleaves the ViT blocks with its point decoder.

Optionally (``token_merge``) the patch tokens are merged as they go through
the blocks, with MCTF's multi-criteria matching
(:mod:`projects.fusion_math.token_merging`); the class and detection tokens
are outside the merged span, so they are never merged. A
:class:`PatchMergeState` records, per image, which merged token holds each
input patch, for readers of the patch tokens (the 3D detector's seeds).
"""
import argparse
import logging
import math
from collections.abc import Mapping
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks.drop import DropPath
from mmdet.registry import MODELS
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import CheckpointLoader
from torch import Tensor

from projects.common.checkpoint import unwrap_state_dict
from projects.fusion_math import token_merging as merging

ARCH_SETTINGS = {
    'tiny': dict(embed_dims=192, num_layers=12, num_heads=3),
    'small': dict(embed_dims=384, num_layers=12, num_heads=6),
}

GridHW = Tuple[int, int]


def resize_patch_pos_embed(patch_pos: Tensor,
                           src_hw: Sequence[int],
                           dst_hw: Sequence[int],
                           mode: str = 'bicubic') -> Tensor:
    """Resize flattened patch position embeddings to another patch grid.

    Args:
        patch_pos (Tensor): (N, h0*w0, D) embeddings of a row-major
            h0 x w0 grid (the order of ``Conv2d(...).flatten(2)``).
        src_hw (Sequence[int]): (h0, w0).
        dst_hw (Sequence[int]): (h, w).
        mode (str): Interpolation mode; YOLOS and DeiT use bicubic with
            ``align_corners=False``.

    Returns:
        Tensor: (N, h*w, D). The input itself when the grids are equal.
    """
    src_h, src_w = int(src_hw[0]), int(src_hw[1])
    dst_h, dst_w = int(dst_hw[0]), int(dst_hw[1])
    num, length, dims = patch_pos.shape
    if length != src_h * src_w:
        raise ValueError(f'patch position embedding has {length} tokens, '
                         f'expected {src_h}x{src_w}={src_h * src_w}')
    if (src_h, src_w) == (dst_h, dst_w):
        return patch_pos
    grid = patch_pos.reshape(num, src_h, src_w, dims).permute(0, 3, 1, 2)
    grid = F.interpolate(
        grid, size=(dst_h, dst_w), mode=mode, align_corners=False)
    return grid.flatten(2).transpose(1, 2)


def infer_patch_grid(num_patches: int,
                     candidates: Sequence[Optional[GridHW]],
                     square_first: bool = False) -> Optional[GridHW]:
    """Guess the (h, w) grid of ``num_patches`` flattened position tokens.

    The token count alone does not fix the aspect ratio, so known grids are
    tried first (``candidates`` in order), then a square grid; with
    ``square_first`` the square grid is tried right after the first
    candidate (DeiT checkpoints are square).

    Returns:
        tuple[int, int] | None: The grid, or None if nothing fits.
    """
    side = math.isqrt(num_patches)
    square = (side, side) if side * side == num_patches else None
    known = [tuple(grid) for grid in candidates if grid is not None]
    if square_first:
        order = known[:1] + [square] + known[1:]
    else:
        order = known + [square]
    for grid in order:
        if grid is not None and grid[0] * grid[1] == num_patches:
            return (int(grid[0]), int(grid[1]))
    return None


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection (Conv2d, kernel = stride = patch).

    Like a strided convolution it floors: trailing rows/columns that do not
    fill a whole patch are dropped.
    """

    def __init__(self, in_channels: int, embed_dims: int,
                 patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(
            in_channels, embed_dims, kernel_size=patch_size, stride=patch_size)

    def forward(self, imgs: Tensor) -> Tuple[Tensor, GridHW]:
        """(B, C, H, W) -> ((B, h*w, D), (h, w)) with h = H // patch."""
        feats = self.proj(imgs)
        grid_hw = (feats.shape[2], feats.shape[3])
        return feats.flatten(2).transpose(1, 2), grid_hw


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (timm keys)."""

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor) -> Tensor:
        """(B, N, D) -> (B, N, D); scale 1/sqrt(head_dims)."""
        batch, length, dims = x.shape
        qkv = self.qkv(x).reshape(batch, length, 3, self.num_heads,
                                  dims // self.num_heads)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(
            query,
            key,
            value,
            dropout_p=self.attn_drop if self.training else 0.)
        out = out.transpose(1, 2).reshape(batch, length, dims)
        return self.proj_drop(self.proj(out))


class Mlp(nn.Module):
    """Two-layer GELU feed-forward network (timm keys ``fc1``/``fc2``)."""

    def __init__(self,
                 embed_dims: int,
                 hidden_dims: int,
                 drop: float = 0.) -> None:
        super().__init__()
        self.fc1 = nn.Linear(embed_dims, hidden_dims)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dims, embed_dims)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        """(B, N, D) -> (B, N, D)."""
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm transformer block with stochastic depth."""

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 drop: float = 0.,
                 attn_drop: float = 0.,
                 drop_path: float = 0.) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims, eps=1e-6)
        self.attn = Attention(embed_dims, num_heads, qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else (
            nn.Identity())
        self.norm2 = nn.LayerNorm(embed_dims, eps=1e-6)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio), drop)

    def forward(self, x: Tensor) -> Tensor:
        """(B, N, D) -> (B, N, D)."""
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class TokenMergeConfig:
    """What ``YOLOSViT(token_merge=dict(...))`` accepts (MCTF's settings,
    the one-step-ahead placement).

    Args:
        r (int | float): Patch tokens removed per merging block: a count,
            or a fraction (< 1) of the patch tokens at that block, so that
            images of any size lose the same share. 0 merges nothing.
        r_eval (int | float, optional): r in eval mode (default ``r``).
        layers (Sequence[int], optional): 0-based blocks that merge.
            Defaults to every block but the first.
        tau_sim, tau_info, tau_size (float): Temperatures of the
            similarity, informativeness (the attention a patch receives
            from the detection tokens, the only readers of YOLOS's output)
            and size criteria; 0 leaves one out. Defaults 1, 20, 40.
        bidirectional (bool): Bidirectional matching. Defaults to True.
        pooling (str): ``'attention_size'`` (MCTF), ``'size'``, ``'max'``
            or ``'mean'``.
        prop_attn (bool): Proportional attention (+ log size of a merged
            key). Defaults to True.
        overflow (str): An r beyond the safeguards (half of the patch
            tokens, at least 10 patch tokens left): ``'error'`` or
            ``'clamp'`` (default: image sizes vary, so a count that fits
            one image may not fit a smaller one).
    """

    def __init__(self,
                 r: Union[int, float] = 0,
                 r_eval: Union[None, int, float] = None,
                 layers: Optional[Sequence[int]] = None,
                 tau_sim: float = 1.,
                 tau_info: float = 20.,
                 tau_size: float = 40.,
                 bidirectional: bool = True,
                 pooling: str = 'attention_size',
                 prop_attn: bool = True,
                 overflow: str = 'clamp',
                 *,
                 num_layers: int) -> None:
        merging.check_r(r, 'token_merge.r')
        if r_eval is not None:
            merging.check_r(r_eval, 'token_merge.r_eval')
        merging.check_choice('token_merge.pooling', pooling, merging.POOLING)
        merging.check_choice('token_merge.overflow', overflow,
                             merging.OVERFLOW)
        self.criteria = merging.MergeCriteria(tau_sim, tau_info, tau_size,
                                              bidirectional)
        merging.check_criteria(self.criteria)
        self.layers = merging.merge_layer_indices(layers, num_layers,
                                                  'token_merge.layers')
        self.r, self.r_eval = r, r_eval
        self.pooling, self.prop_attn, self.overflow = (pooling, prop_attn,
                                                       overflow)

    def layer_r(self, layer: int, num_patches: int, training: bool) -> int:
        """Patch tokens block ``layer`` removes from ``num_patches``."""
        r = self.r if training or self.r_eval is None else self.r_eval
        if layer not in self.layers or not r:
            return 0
        try:
            return merging.reduction_count(num_patches, r, 0, self.overflow)
        except ValueError as exc:
            raise ValueError(f'YOLOSViT block {layer}: {exc}') from None


class PatchMergeState:
    """The merges of the patch tokens in one forward of a
    :class:`YOLOSViT`, for B images of P patches.

    Attributes:
        index (Tensor): (B, P) int64, the merged patch token (0 .. P' - 1)
            that holds each input patch (row-major in the patch grid).
        size (Tensor | None): (B, P', 1) input patches per merged token;
            None until something merged.
        source (Tensor | None): With ``trace_source``: (B, P', P) dense
            source matrix, 1 where a merged token holds an input patch
            (for pictures and checks; quadratic in P).
    """

    def __init__(self,
                 batch: int,
                 num_patches: int,
                 device,
                 trace_source: bool = False) -> None:
        self.index = torch.arange(num_patches, device=device).expand(batch, -1)
        self.size: Optional[Tensor] = None
        self.source = torch.eye(
            num_patches, device=device).expand(batch, -1,
                                               -1) if (trace_source) else None

    def record(self, matching: 'merging.Matching') -> None:
        """Follow one merge step of the patch tokens."""
        self.index = merging.compose_index(self.index,
                                           merging.merge_index(matching))
        if self.source is not None:
            self.source = merging.merge_source(matching, self.source)

    @property
    def num_patches(self) -> int:
        """P', the patch tokens now."""
        return self.index.shape[1] if self.size is None else (
            self.size.shape[1])

    def token_of_patch(self, rows: Tensor, patch: Tensor) -> Tensor:
        """The merged token holding input patch ``patch`` of image
        ``rows`` (any equal shapes)."""
        return self.index[rows, patch]


def _key_bias(state: PatchMergeState, num_tokens: int,
              num_det: int) -> Optional[Tensor]:
    """Proportional attention: + log size on every key, (B, 1, 1, T)
    (0 for the class and detection tokens); None while all sizes are 1."""
    if state.size is None:
        return None
    size = state.size[..., 0]
    bias = size.new_zeros(size.shape[0], num_tokens)
    bias[:, 1:num_tokens - num_det] = size.log()
    return bias[:, None, None]


def _merging_block(block: 'Block', x: Tensor, r: int, state: PatchMergeState,
                   cfg: TokenMergeConfig, num_det: int) -> Tensor:
    """One block with MCTF's one-step-ahead merge of the patch span
    ``[1, T - num_det)``: the block's attention over the unmerged tokens
    decides the merge (informativeness = attention received from the
    detection tokens), is merged with the tokens and applied to the values
    of the merged tokens. ``r = 0`` runs the block with proportional
    attention only."""
    attn_module = block.attn
    batch, num, dims = x.shape
    heads = attn_module.num_heads
    bias = _key_bias(state, num, num_det) if cfg.prop_attn else None
    weight, qkv_bias = attn_module.qkv.weight, attn_module.qkv.bias
    if r == 0:
        out = F.scaled_dot_product_attention(
            *merging.qkv_heads(block.norm1(x), weight, qkv_bias, heads),
            attn_mask=bias,
            dropout_p=attn_module.attn_drop if block.training else 0.)
    else:
        attn = merging.attention_probs(
            *merging.qkv_heads(
                block.norm1(x), weight, qkv_bias, heads, count=2), bias)
        stop = num - num_det
        # attention the patches receive from the detection tokens
        received = attn[:, :, stop:, 1:stop].detach().mean(dim=(1, 2))
        size = state.size
        scores = merging.merge_scores(
            x[:, 1:stop],
            cfg.criteria,
            size=size,
            received=received,
            num_protected=0)
        matching = merging.bipartite_matching(scores, r,
                                              cfg.criteria.bidirectional, 0)
        if size is None:
            size = x.new_ones(batch, stop - 1, 1)
        x, state.size = merging.pool_tokens(
            matching, x, size, cfg.pooling, received=received, start=1)
        state.record(matching)
        attn = merging.merge_attention(
            matching, attn, size, cfg.pooling, received=received, start=1)
        if block.training and attn_module.attn_drop > 0:
            attn = F.dropout(attn, attn_module.attn_drop)
        num = x.shape[1]
        out = attn @ merging.qkv_heads(
            block.norm1(x), weight, qkv_bias, heads, first=2, count=1)[0]
    out = out.transpose(1, 2).reshape(batch, num, dims)
    x = x + block.drop_path(attn_module.proj_drop(attn_module.proj(out)))
    return x + block.drop_path(block.mlp(block.norm2(x)))


@MODELS.register_module()
class YOLOSViT(BaseModule):
    """ViT with YOLOS detection tokens (Fang et al., NeurIPS 2021).

    Args:
        arch (str | dict): 'tiny' (DeiT-Ti: 192-d, 12 blocks, 3 heads),
            'small' (DeiT-S: 384-d, 12 blocks, 6 heads) or a dict with
            ``embed_dims``, ``num_layers`` and ``num_heads``.
        patch_size (int): Patch side in pixels. Defaults to 16.
        in_channels (int): Image channels. Defaults to 3.
        num_det_tokens (int): Number of [DET] tokens T. Defaults to 100.
        init_pe_size (tuple[int, int]): (H, W) in pixels of the image size
            the position embeddings are stored for; the grid is
            (H // patch, W // patch), e.g. (800, 1333) -> 50 x 83.
        mid_pe (bool): Learn one extra position embedding per block, added
            after every block except the last (YOLOS-S/B). Its grid is the
            init grid. Defaults to False.
        pretrained_pe_size (tuple[int, int], optional): (H, W) in pixels of
            the position-embedding grid of the checkpoint to load, needed
            only when it is neither square nor this model's init grid.
        mlp_ratio (float): Hidden/embedding width of the MLPs. Defaults to 4.
        qkv_bias (bool): Bias in the qkv projection. Defaults to True.
        drop_rate (float): Dropout after the position embedding and in the
            blocks. Defaults to 0.
        attn_drop_rate (float): Attention dropout. Defaults to 0.
        drop_path_rate (float): Stochastic depth of the last block, linearly
            increasing from 0 over the blocks. The TokenFusion reference
            trains DeiT-Ti with 0.3. Defaults to 0.1.
        token_merge (dict, optional): Merge patch tokens as they go, see
            :class:`TokenMergeConfig` (e.g. ``dict(r=0.25)``: a quarter of
            the patch tokens in every block but the first). No parameters
            are added; ``r=0`` is the plain ViT bit for bit.
        init_cfg (dict | list[dict], optional): ``dict(type='Pretrained',
            checkpoint=..., prefix=None)`` loads a DeiT / YOLOS checkpoint
            and adapts its position embeddings (see
            :func:`load_yolos_vit_checkpoint`).
    """

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 patch_size: int = 16,
                 in_channels: int = 3,
                 num_det_tokens: int = 100,
                 init_pe_size: Sequence[int] = (800, 1333),
                 mid_pe: bool = False,
                 pretrained_pe_size: Optional[Sequence[int]] = None,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 token_merge: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        settings = self._parse_arch(arch)
        self.embed_dims = settings['embed_dims']
        self.num_layers = settings['num_layers']
        self.num_heads = settings['num_heads']
        if patch_size < 1 or num_det_tokens < 1:
            raise ValueError(f'patch_size ({patch_size}) and num_det_tokens '
                             f'({num_det_tokens}) must be positive')
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.num_det_tokens = num_det_tokens
        self.init_grid = self._grid_of(init_pe_size, 'init_pe_size')
        self.pretrained_grid = None if pretrained_pe_size is None else (
            self._grid_of(pretrained_pe_size, 'pretrained_pe_size'))
        self.mid_pe = mid_pe
        num_tokens = 1 + self.init_grid[0] * self.init_grid[1] + (
            num_det_tokens)
        dims = self.embed_dims

        self.patch_embed = PatchEmbed(in_channels, dims, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dims))
        self.det_token = nn.Parameter(torch.zeros(1, num_det_tokens, dims))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, dims))
        if mid_pe:
            self.mid_pos_embed = nn.Parameter(
                torch.zeros(self.num_layers - 1, 1, num_tokens, dims))
        self.pos_drop = nn.Dropout(drop_rate)
        drop_path_rates = torch.linspace(0, drop_path_rate,
                                         self.num_layers).tolist()
        self.blocks = nn.ModuleList([
            Block(dims, self.num_heads, mlp_ratio, qkv_bias, drop_rate,
                  attn_drop_rate, rate) for rate in drop_path_rates
        ])
        self.norm = nn.LayerNorm(dims, eps=1e-6)
        self.token_merge = None if token_merge is None else TokenMergeConfig(
            **token_merge, num_layers=self.num_layers)
        self._reset_parameters()

    @staticmethod
    def _parse_arch(arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            if arch not in ARCH_SETTINGS:
                raise ValueError(f'unknown YOLOSViT arch "{arch}", expected '
                                 f'one of {sorted(ARCH_SETTINGS)} or a dict')
            return dict(ARCH_SETTINGS[arch])
        if not isinstance(arch, Mapping):
            raise TypeError(f'arch must be a str or dict, got {type(arch)}')
        needed = ('embed_dims', 'num_layers', 'num_heads')
        missing = [key for key in needed if key not in arch]
        if missing:
            raise KeyError(f'arch dict lacks {missing}; expected keys '
                           f'{list(needed)}')
        settings = {key: int(arch[key]) for key in needed}
        if settings['embed_dims'] % settings['num_heads']:
            raise ValueError(f'embed_dims {settings["embed_dims"]} is not '
                             f'divisible by num_heads {settings["num_heads"]}')
        if settings['num_layers'] < 1:
            raise ValueError('arch num_layers must be at least 1')
        return settings

    def _grid_of(self, size: Sequence[int], name: str) -> GridHW:
        if len(size) != 2:
            raise ValueError(f'{name} must be (H, W), got {size}')
        height, width = int(size[0]), int(size[1])
        if height < self.patch_size or width < self.patch_size:
            raise ValueError(f'{name} {size} is smaller than a patch '
                             f'({self.patch_size} px)')
        return (height // self.patch_size, width // self.patch_size)

    def _reset_parameters(self) -> None:
        """DeiT/YOLOS initialisation: truncated normal (std 0.02) for the
        tokens, position embeddings and linear weights."""
        for param in (self.cls_token, self.det_token, self.pos_embed):
            nn.init.trunc_normal_(param, std=.02)
        if self.mid_pe:
            nn.init.trunc_normal_(self.mid_pos_embed, std=.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    # ------------------------------------------------------------ weights
    def init_weights(self) -> None:
        """Initialise; a ``Pretrained`` init_cfg loads a DeiT/YOLOS file.

        mmengine's own ``PretrainedInit`` only unwraps ``state_dict``, so
        ``{'model': ...}`` files (DeiT, YOLOS) would load nothing; the
        checkpoint is therefore loaded here.
        """
        cfgs = self.init_cfg
        if isinstance(cfgs, Mapping):
            cfgs = [cfgs]
        cfgs = list(cfgs or [])
        pretrained = [cfg for cfg in cfgs if cfg.get('type') == 'Pretrained']
        if not pretrained or self.is_init:
            super().init_weights()
            return
        original = self.init_cfg
        self.init_cfg = [cfg for cfg in cfgs if cfg not in pretrained] or None
        try:
            super().init_weights()
        finally:
            self.init_cfg = original
        cfg = pretrained[-1]
        if 'checkpoint' not in cfg:
            raise KeyError('Pretrained init_cfg of YOLOSViT needs a '
                           '"checkpoint" path')
        load_yolos_vit_checkpoint(
            self,
            cfg['checkpoint'],
            map_location=cfg.get('map_location', 'cpu'),
            prefix=cfg.get('prefix'))

    def _adapt_pos_embed(self, pos_embed: Tensor, key: str, src_num_det: int,
                         src_num_prefix: int) -> Tensor:
        """Bring a checkpoint position embedding to this model's layout.

        Args:
            pos_embed (Tensor): (L, S, D) with S = src_num_prefix + h0*w0 +
                src_num_det; src_num_prefix is 1 (cls) or 2 (cls + DeiT
                distillation token, whose embedding is dropped).
            key (str): State-dict key, for messages.
            src_num_det (int): Det tokens of the checkpoint (0 for DeiT:
                their embeddings are then freshly drawn, trunc normal 0.02).

        Returns:
            Tensor: (L, 1 + h*w + T, D) on this model's init grid.
        """
        if pos_embed.dim() != 3 or pos_embed.shape[-1] != self.embed_dims:
            raise ValueError(f'{key}: expected (L, tokens, {self.embed_dims})'
                             f', got {tuple(pos_embed.shape)}')
        if src_num_det not in (0, self.num_det_tokens):
            raise ValueError(f'{key}: checkpoint has {src_num_det} det tokens'
                             f', this model has {self.num_det_tokens}')
        num_patches = pos_embed.shape[1] - src_num_prefix - src_num_det
        src_grid = infer_patch_grid(
            max(num_patches, 0), [self.pretrained_grid, self.init_grid],
            square_first=src_num_det == 0)
        if src_grid is None:
            raise ValueError(
                f'{key}: cannot tell the patch grid of {num_patches} '
                f'position tokens (not square, not the init grid '
                f'{self.init_grid}); pass pretrained_pe_size=(H, W)')
        cls_pos = pos_embed[:, :1]
        patch_pos = pos_embed[:, src_num_prefix:src_num_prefix + num_patches]
        patch_pos = resize_patch_pos_embed(patch_pos, src_grid, self.init_grid)
        if src_num_det:
            det_pos = pos_embed[:, pos_embed.shape[1] - src_num_det:]
        else:
            det_pos = pos_embed.new_zeros(pos_embed.shape[0],
                                          self.num_det_tokens, self.embed_dims)
            nn.init.trunc_normal_(det_pos, std=.02)
        return torch.cat([cls_pos, patch_pos, det_pos], dim=1)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys,
                              error_msgs) -> None:
        """Adapt position embeddings of DeiT / YOLOS checkpoints (other
        grid, no det tokens, distillation token) before loading."""
        det_key = prefix + 'det_token'
        src_num_det = state_dict[det_key].shape[1] if (det_key
                                                       in state_dict) else 0
        src_num_prefix = 2 if prefix + 'dist_token' in state_dict else 1
        pos_key = prefix + 'pos_embed'
        if pos_key in state_dict:
            state_dict[pos_key] = self._adapt_pos_embed(
                state_dict[pos_key], pos_key, src_num_det, src_num_prefix)
        mid_key = prefix + 'mid_pos_embed'
        if self.mid_pe and mid_key in state_dict:
            mid_pos = state_dict[mid_key]
            if mid_pos.dim() != 4 or mid_pos.shape[:2] != (self.num_layers - 1,
                                                           1):
                raise ValueError(
                    f'{mid_key}: expected ({self.num_layers - 1}, 1, tokens,'
                    f' D), got {tuple(mid_pos.shape)}')
            state_dict[mid_key] = self._adapt_pos_embed(
                mid_pos[:, 0], mid_key, src_num_det, 1)[:, None]
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)

    # ------------------------------------------------------------ forward
    def _pos_embed_for_grid(self, pos_embed: Tensor,
                            grid_hw: GridHW) -> Tensor:
        """(L, 1 + h0*w0 + T, D) -> (L, 1 + h*w + T, D), bicubic."""
        if tuple(grid_hw) == self.init_grid:
            return pos_embed
        num_patches = self.init_grid[0] * self.init_grid[1]
        patch_pos = resize_patch_pos_embed(pos_embed[:, 1:1 + num_patches],
                                           self.init_grid, grid_hw)
        return torch.cat(
            [pos_embed[:, :1], patch_pos, pos_embed[:, 1 + num_patches:]],
            dim=1)

    def _check_tokens(self,
                      tokens: Tensor,
                      grid_hw: GridHW,
                      state: Optional[PatchMergeState] = None) -> None:
        patches = grid_hw[0] * grid_hw[1] if state is None else (
            state.num_patches)
        expected = 1 + patches + self.num_det_tokens
        if tokens.dim() != 3 or tokens.shape[1:] != (expected,
                                                     self.embed_dims):
            raise ValueError(
                f'tokens must be (B, {expected}, {self.embed_dims}) for grid '
                f'{tuple(grid_hw)}, got {tuple(tokens.shape)}')

    def embed(self, imgs: Tensor) -> Tuple[Tensor, GridHW]:
        """Patchify and add position embeddings.

        Args:
            imgs (Tensor): (B, C, H, W); H and W need not be multiples of the
                patch size (the remainder is dropped, as in YOLOS).

        Returns:
            tuple: tokens (B, 1 + h*w + T, D) ordered [cls | patches | det]
            and the patch grid (h, w) = (H // patch, W // patch).
        """
        if imgs.dim() != 4 or imgs.shape[1] != self.in_channels:
            raise ValueError(f'images must be (B, {self.in_channels}, H, W), '
                             f'got {tuple(imgs.shape)}')
        height, width = imgs.shape[-2:]
        if height < self.patch_size or width < self.patch_size:
            raise ValueError(f'image smaller than a patch: {height}x{width} '
                             f'input, patch size {self.patch_size}')
        patches, grid_hw = self.patch_embed(imgs)
        batch = imgs.shape[0]
        tokens = torch.cat([
            self.cls_token.expand(batch, -1, -1), patches,
            self.det_token.expand(batch, -1, -1)
        ],
                           dim=1)
        tokens = tokens + self._pos_embed_for_grid(self.pos_embed, grid_hw)
        return self.pos_drop(tokens), grid_hw

    def new_merge_state(
            self,
            tokens: Tensor,
            grid_hw: GridHW,
            trace_source: bool = False) -> Optional[PatchMergeState]:
        """A fresh :class:`PatchMergeState` for the tokens of :meth:`embed`
        when ``token_merge`` is set, else None."""
        if self.token_merge is None:
            return None
        return PatchMergeState(tokens.shape[0], grid_hw[0] * grid_hw[1],
                               tokens.device, trace_source)

    def forward_blocks(self,
                       tokens: Tensor,
                       start: int,
                       stop: int,
                       grid_hw: GridHW,
                       state: Optional[PatchMergeState] = None) -> Tensor:
        """Run blocks ``[start, stop)``.

        With ``mid_pe`` the mid position embedding of block i (interpolated
        to ``grid_hw``) is added after block i for every i except the last
        block of the network, as YOLOS-S does; after merges, a merged patch
        token gets the mean embedding of the patches it holds.

        Args:
            tokens (Tensor): (B, 1 + P + T, D) from :meth:`embed` or a
                previous call (P = h*w, or the patch tokens left after
                merging).
            start (int): First block to run.
            stop (int): One past the last block to run.
            grid_hw (tuple[int, int]): Patch grid returned by :meth:`embed`.
            state (PatchMergeState, optional): With ``token_merge``: the
                state of this forward (:meth:`new_merge_state`), updated in
                place. Required when a block in the range merges.

        Returns:
            Tensor: (B, 1 + P' + T, D).
        """
        if not 0 <= start <= stop <= self.num_layers:
            raise ValueError(f'need 0 <= start <= stop <= {self.num_layers}, '
                             f'got start={start}, stop={stop}')
        self._check_tokens(tokens, grid_hw, state)
        last_with_mid = min(stop, self.num_layers - 1)
        mid_pos = None
        if self.mid_pe and start < last_with_mid:
            mid_pos = self._pos_embed_for_grid(
                self.mid_pos_embed[start:last_with_mid, 0], grid_hw)
        for index in range(start, stop):
            tokens = self._block_forward(index, tokens, state)
            if mid_pos is not None and index < last_with_mid:
                tokens = tokens + self._merged_pos(mid_pos[index - start],
                                                   state)
        return tokens

    def _block_forward(self, index: int, tokens: Tensor,
                       state: Optional[PatchMergeState]) -> Tensor:
        block = self.blocks[index]
        cfg = self.token_merge
        if cfg is None:
            return block(tokens)
        if state is None:
            raise ValueError('YOLOSViT with token_merge needs the merge state '
                             'of the forward: forward_blocks(..., state='
                             'vit.new_merge_state(tokens, grid_hw))')
        r = cfg.layer_r(index, state.num_patches, self.training)
        if r == 0 and state.size is None:
            return block(tokens)  # nothing merged yet: the plain block
        return _merging_block(block, tokens, r, state, cfg,
                              self.num_det_tokens)

    def _merged_pos(self, pos: Tensor,
                    state: Optional[PatchMergeState]) -> Tensor:
        """(1 + h*w + T, D) position embedding -> (B, 1 + P' + T, D) after
        the merges of ``state``."""
        if state is None or state.size is None:
            return pos
        num_patches = state.index.shape[1]
        patches = merging.group_mean(state.index, pos[None, 1:1 + num_patches],
                                     state.size)
        batch = patches.shape[0]
        return torch.cat([
            pos[None, :1].expand(batch, -1, -1), patches,
            pos[None, 1 + num_patches:].expand(batch, -1, -1)
        ],
                         dim=1)

    def det_tokens(self, tokens: Tensor) -> Tensor:
        """(B, 1 + h*w + T, D) -> final-normed [DET] tokens (B, T, D)."""
        # LayerNorm is per token, so slicing first is equivalent and cheaper
        return self.norm(tokens[:, tokens.shape[1] - self.num_det_tokens:])

    def patch_tokens(self, tokens: Tensor) -> Tensor:
        """(B, 1 + P + T, D) -> patch tokens (B, P, D), not normed (P = h*w,
        or fewer after merging: see :class:`PatchMergeState`)."""
        return tokens[:, 1:tokens.shape[1] - self.num_det_tokens]

    def forward(self, imgs: Tensor) -> Tuple[Tensor]:
        """(B, C, H, W) -> ([DET] tokens (B, T, D), ) after all blocks."""
        tokens, grid_hw = self.embed(imgs)
        tokens = self.forward_blocks(tokens, 0, self.num_layers, grid_hw,
                                     self.new_merge_state(tokens, grid_hw))
        return (self.det_tokens(tokens), )


def load_yolos_vit_checkpoint(
        model: YOLOSViT,
        filename: str,
        map_location: str = 'cpu',
        prefix: Optional[str] = None,
        logger: str = 'current') -> Tuple[List[str], List[str]]:
    """Load a DeiT, YOLOS or mmengine checkpoint into a :class:`YOLOSViT`.

    Position embeddings are resized to the model's init grid and DeiT
    checkpoints get fresh det-token embeddings (``_load_from_state_dict``).
    Missing and unexpected keys are logged as a warning.

    Args:
        model (YOLOSViT): Target model.
        filename (str): Local path or URL understood by mmengine.
        map_location (str): Passed to ``torch.load``.
        prefix (str, optional): Key prefix of the ViT inside the file
            (default: ``backbone.`` when present).
        logger (str): mmengine logger name.

    Returns:
        tuple[list[str], list[str]]: missing and unexpected keys.
    """
    # YOLOS COCO checkpoints pickle their argparse namespace next to the
    # weights; allow that one harmless class under torch's weights_only load
    with torch.serialization.safe_globals([argparse.Namespace]):
        checkpoint = CheckpointLoader.load_checkpoint(
            filename, map_location=map_location)
    state = unwrap_state_dict(checkpoint, str(filename), prefix)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        print_log(
            f'YOLOSViT: loaded {filename}; missing keys {missing}; '
            f'unexpected keys {unexpected}',
            logger=logger,
            level=logging.WARNING)
    else:
        print_log(f'YOLOSViT: loaded {filename}', logger=logger)
    return list(missing), list(unexpected)
