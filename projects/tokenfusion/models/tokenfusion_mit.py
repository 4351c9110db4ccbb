"""TokenFusion's fused Mix Vision Transformer (SegFormer encoder).

All modalities run through one MiT whose conv and linear weights are shared
(patch embeddings, attention q / kv / proj / sr, Mix-FFN fc1 / dwconv /
fc2) while every LayerNorm has one affine transform per modality. The
modalities are stacked into the batch dimension, so every shared layer runs
once on the (M*B) stack; only the norms, the score predictors and the fusion
step look at the modality axis.

GeminiFusion with M > 2 modalities follows its DeLiVER branch: two streams
(RGB and one auxiliary stream) run through the blocks; every stage's patch
embedding still sees all M modalities and a hub aggregates the M - 1
auxiliary ones into the auxiliary stream (see :class:`TokenFusionMiT`).
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import CheckpointLoader
from mmseg.registry import MODELS

from .checkpoint_conversion import mit_to_tokenfusion
from .gemini_fusion import GeminiFusion, HubScorePredictor, hub_update
from .modality_layers import (ModalityConv2d, ModalityLayerNorm,
                              ModalityLinear, split_modalities)
from .token_fusion import (allocation_for_grid, exchange_tokens,
                           fuse_attention_output, make_group_allocation,
                           scores_from_logits)

# SegFormer presets (embed_dims of stage 1, blocks per stage)
MIT_ARCHS = {
    'b0': dict(embed_dims=32, num_layers=(2, 2, 2, 2)),
    'b1': dict(embed_dims=64, num_layers=(2, 2, 2, 2)),
    'b2': dict(embed_dims=64, num_layers=(3, 4, 6, 3)),
    'b3': dict(embed_dims=64, num_layers=(3, 4, 18, 3)),
    'b4': dict(embed_dims=64, num_layers=(3, 8, 27, 3)),
    'b5': dict(embed_dims=64, num_layers=(3, 6, 40, 3)),
}
FUSION_MODES = ('attention', 'token', 'geminifusion')
# LayerNorms of a block that may carry the CEN channel exchange
EXCHANGE_NORMS = ('norm1', 'norm2')


def drop_path(x: torch.Tensor, prob: float, training: bool) -> torch.Tensor:
    """Stochastic depth with an independent draw per row, i.e. per image
    and modality of the stack."""
    if prob == 0. or not training:
        return x
    keep = x.new_empty((x.shape[0], ) + (1, ) * (x.ndim - 1)).bernoulli_(1 -
                                                                         prob)
    return x * keep / (1 - prob)


class ScorePredictor(nn.Module):
    """Token score predictor of one stage: per modality its own
    LayerNorm(C) -> Linear(C, C) -> GELU -> Linear(C, C/2) -> GELU ->
    Linear(C/2, C/4) -> GELU -> Linear(C/4, 2) (the reference's
    ``PredictorLG``), evaluated for all modalities at once.

    Input (M*B, N, C) -> scores (M, B, N) = softmax(logits)[..., 0].
    """

    def __init__(self, num_modalities: int, channels: int) -> None:
        super().__init__()
        m = num_modalities
        self.num_modalities = m
        self.norm = ModalityLayerNorm(m, channels, eps=1e-5)
        self.fc1 = ModalityLinear(m, channels, channels, shared=False)
        self.fc2 = ModalityLinear(m, channels, channels // 2, shared=False)
        self.fc3 = ModalityLinear(
            m, channels // 2, channels // 4, shared=False)
        self.fc4 = ModalityLinear(m, channels // 4, 2, shared=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        x = F.gelu(self.fc1(x))
        x = F.gelu(self.fc2(x))
        x = F.gelu(self.fc3(x))
        logits = self.fc4(x)
        return scores_from_logits(logits).reshape(self.num_modalities, -1,
                                                  logits.shape[-2])


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
    a per-modality LayerNorm. (M*B, N, C) -> (M*B, N, C).

    With ``gemini_heads`` set, a :class:`GeminiFusion` module (``gemini``)
    fuses the modalities' attention outputs before the shared ``proj``.
    """

    def __init__(self,
                 m: int,
                 dims: int,
                 num_heads: int,
                 sr_ratio: int,
                 qkv_bias: bool,
                 attn_drop: float,
                 proj_drop: float,
                 shared: bool,
                 share_norms: bool,
                 gemini_heads: Optional[int] = None) -> None:
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
        self.gemini = GeminiFusion(dims, gemini_heads, m) \
            if gemini_heads else None

    def forward(self, x: torch.Tensor, hw: tuple) -> torch.Tensor:
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
        out = out.transpose(1, 2).reshape(mb, n, c)
        if self.gemini is not None:
            out = self.gemini(out)
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
    """A MiT block over the modality stack, with optional token fusion.

    Args:
        fusion (str): ``'attention'`` (the reference code, which produced
            the published numbers): the attention output is multiplied by
            the token score, below θ replaced by the other modality's
            score-weighted attention output, then added to the residual.
            ``'token'`` (the paper's text): the attention output is
            multiplied by the score, and after the whole block the tokens
            whose score is below θ are replaced by the other modality's
            token.
        gemini_heads (int, optional): Build a :class:`GeminiFusion` of
            that many heads in ``attn`` (``fusion='geminifusion'``): it
            fuses the attention outputs before the shared projection; the
            block is then called without scores.
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
                 gemini_heads: Optional[int] = None) -> None:
        super().__init__()
        self.num_modalities = m
        self.drop_path_rate = drop_path_rate
        self.norm1 = ModalityLayerNorm(m, dims, shared=share_norms)
        self.attn = EfficientAttention(m, dims, num_heads, sr_ratio, qkv_bias,
                                       attn_drop_rate, drop_rate, share_attn,
                                       share_norms, gemini_heads)
        self.norm2 = ModalityLayerNorm(m, dims, shared=share_norms)
        self.mlp = MixFFN(m, dims, dims * mlp_ratio, drop_rate, share_mlp)

    def forward(self,
                x: torch.Tensor,
                hw: tuple,
                scores: Optional[torch.Tensor] = None,
                fusion: str = 'attention',
                threshold: float = 0.02,
                allocation: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: (M*B, N, C); scores: (M, B, N) or None for no fusion."""
        m = self.num_modalities
        attn = self.attn(self.norm1(x), hw)
        if scores is not None:
            stacked = attn.reshape(m, -1, *attn.shape[1:])
            if fusion == 'attention':
                stacked = fuse_attention_output(stacked, scores, threshold,
                                                allocation)
            else:
                stacked = stacked * scores.unsqueeze(-1)
            attn = stacked.reshape(attn.shape)
        x = x + drop_path(attn, self.drop_path_rate, self.training)
        x = x + drop_path(
            self.mlp(self.norm2(x), hw), self.drop_path_rate, self.training)
        if scores is not None and fusion == 'token':
            stacked = x.reshape(m, -1, *x.shape[1:])
            x = exchange_tokens(stacked, scores, threshold,
                                allocation).reshape(x.shape)
        return x


@MODELS.register_module()
class TokenFusionMiT(BaseModule):
    """TokenFusion's multimodal Mix Vision Transformer.

    Input: (B, M * in_channels, H, W), the modalities concatenated along
    channels as ``MultiModalSegDataPreProcessor`` produces them (RGB-D with
    tiled depth: 6 channels). Output: a tuple ``(features, scores)`` where
    ``features`` holds 4 maps (S*B, C_s, H/4/2^s, W/4/2^s), stream m at
    rows m*B..(m+1)*B, and ``scores`` one (M, B, N_s) tensor per fused
    block (names in :attr:`fused_blocks`). S = :attr:`num_streams` is M,
    except for GeminiFusion with M > 2 (the DeLiVER hub), where it is 2.

    GeminiFusion hub (``fusion='geminifusion'``, M = 3 or 4, RGB first,
    as the GeminiFusion DeLiVER branch): at every stage the shared
    patch-embed conv and the M private patch-embed LayerNorms run on all
    modalities; per auxiliary modality a score map s_a = sigmoid(Conv1x1(
    DWConv3x3(x_a))) (``extra_score_predictor.{stage}.score_nets.{a}``)
    scales its tokens, x_a <- x_a * s_a + x_a, and the element-wise max
    over the auxiliaries is the auxiliary stream. Blocks (2 private norm
    copies, GeminiFusion between RGB and that stream) and the stage norm
    (2 copies) run on the two streams. Before the next stage, every
    auxiliary modality's scaled tokens get the auxiliary stream's stage
    output (after the stage norm) added. With M = 2 there is no hub.

    With ``num_modalities=1`` (or no fused block) this is exactly mmseg's
    ``MixVisionTransformer``.

    Args:
        arch (str): MiT preset ``'b0'`` .. ``'b5'``; ``embed_dims`` and
            ``num_layers`` override it.
        num_modalities (int): M. Defaults to 2.
        in_channels (int): Channels of one modality. Defaults to 3.
        num_heads, patch_sizes, strides, sr_ratios, mlp_ratio, qkv_bias,
        drop_rate, attn_drop_rate, drop_path_rate, out_indices: as mmseg's
            ``MixVisionTransformer``.
        fusion (str): ``'attention'`` (TokenFusion reference code, default)
            or ``'token'`` (TokenFusion paper text), see :class:`FusedBlock`;
            or ``'geminifusion'`` (GeminiFusion, ICML'24): a
            :class:`GeminiFusion` module in every fused block (pixel-wise
            attention to a noised self key and a relation-modulated key
            carrying the other modality, on the attention output before
            the shared projection), no score predictors, no exchange; the
            backbone then returns an empty score list. M > 2 uses the hub
            described above.
        fusion_threshold (float): θ. Defaults to 0.02.
        fuse_stages (Sequence[int]): Stages with score predictors and
            exchange (GeminiFusion modules). Defaults to all four.
        fuse_blocks (str | dict): ``'all'`` blocks of a fused stage,
            ``'last'`` block only, or ``{stage: [block indices]}``.
        share_attn, share_mlp (bool): Share attention / Mix-FFN weights
            across modalities (True) or keep one set per modality (Table 8).
        share_norms (bool): One LayerNorm for all modalities instead of one
            per modality (Table 8). Defaults to False.
        allocation_pattern (int): Side of the random group-allocation
            pattern for M > 2 (tiled over token grids). Defaults to 32.
        allocation_seed (int): Seed of that allocation (it is a buffer saved
            with the checkpoint). Defaults to 0.
        fusion_heads (int): Heads of the GeminiFusion attention. Defaults
            to 8 (the reference, every stage).
        channel_exchange (dict, optional): CEN-style channel exchange on
            the per-modality LayerNorms (TokenFusion supplementary, Table 9),
            independent of (and combinable with) every ``fusion`` mode and
            with no token fusion (``fuse_stages=()``). Keys:
            ``threshold`` (θ_c, default 2e-2 as CEN), ``norms`` (which norms
            of a block exchange, any of ``('norm1', 'norm2')``, default
            both: CEN exchanges right after every BN, here right after the
            LN that feeds attention and Mix-FFN), ``stages`` (default all
            four; every block of those stages). The exchange acts on the
            LN output after the affine transform: channel c of modality m
            is replaced by the other modality's (M > 2: the mean of the
            others) where |γ_m,c| < θ_c. Residual streams, patch-embed,
            ``attn.norm`` and end-of-stage norms are not exchanged. Adds no
            parameter or buffer; the exchanging norms are listed in
            :attr:`channel_exchange_norms`, their weights (M, C) returned
            by :meth:`channel_gammas` (for the segmentor's l1 term).
            Defaults to None (off).
        init_cfg (dict, optional): ``dict(type='Pretrained',
            checkpoint=...)`` with an NVlabs ``mit_b*.pth``, an
            mmseg-converted MiT or a checkpoint of this model.
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
                 fusion: str = 'attention',
                 fusion_threshold: float = 0.02,
                 fuse_stages: Sequence[int] = (0, 1, 2, 3),
                 fuse_blocks: Union[str, Dict[int, Sequence[int]]] = 'all',
                 share_attn: bool = True,
                 share_mlp: bool = True,
                 share_norms: bool = False,
                 allocation_pattern: int = 32,
                 allocation_seed: int = 0,
                 fusion_heads: int = 8,
                 channel_exchange: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if arch not in MIT_ARCHS:
            raise ValueError(f'arch must be one of {sorted(MIT_ARCHS)}')
        if fusion not in FUSION_MODES:
            raise ValueError(f'fusion must be one of {FUSION_MODES}')
        gemini = fusion == 'geminifusion'
        embed_dims = embed_dims or MIT_ARCHS[arch]['embed_dims']
        num_layers = tuple(num_layers or MIT_ARCHS[arch]['num_layers'])
        m = num_modalities
        # GeminiFusion with > 2 modalities: RGB + one aggregated stream
        hub = gemini and m > 2
        streams = 2 if hub else m
        self.num_modalities = m
        self.num_streams = streams
        self.hub = hub
        self.in_channels = in_channels
        self.out_indices = tuple(out_indices)
        self.fusion = fusion
        self.fusion_threshold = fusion_threshold
        self.dims = [embed_dims * h for h in num_heads]

        total = sum(num_layers)
        rates = torch.linspace(0, drop_path_rate, total).tolist()
        # token-score fusion: blocks with scores / exchange
        self.fused_blocks: List[str] = []
        self._fused: Dict[int, Tuple[int, ...]] = {}
        # GeminiFusion: blocks with a GeminiFusion module
        self.gemini_blocks: List[str] = []
        cursor = 0
        for s, depth in enumerate(num_layers):
            dims = self.dims[s]
            blocks = self._blocks_to_fuse(s, depth, fuse_stages, fuse_blocks)
            if m < 2:
                blocks = ()
            self.add_module(
                f'patch_embed{s + 1}',
                OverlapPatchEmbed(m,
                                  in_channels if s == 0 else self.dims[s - 1],
                                  dims, patch_sizes[s], strides[s],
                                  share_norms))
            self.add_module(
                f'block{s + 1}',
                nn.ModuleList([
                    FusedBlock(
                        streams, dims, num_heads[s], sr_ratios[s], mlp_ratio,
                        qkv_bias, drop_rate, attn_drop_rate, rates[cursor + j],
                        share_attn, share_mlp, share_norms,
                        fusion_heads if gemini and j in blocks else None)
                    for j in range(depth)
                ]))
            self.add_module(
                f'norm{s + 1}',
                ModalityLayerNorm(streams, dims, shared=share_norms))
            cursor += depth
            if gemini:
                self.gemini_blocks += [f'block{s + 1}.{j}' for j in blocks]
            elif blocks:
                self._fused[s] = blocks
                self.fused_blocks += [f'block{s + 1}.{j}' for j in blocks]
        self.score_predictor = nn.ModuleDict(
            {str(s): ScorePredictor(m, self.dims[s])
             for s in self._fused})
        if hub:  # one score-net set per stage, as the reference
            self.extra_score_predictor = nn.ModuleList(
                [HubScorePredictor(m, dims) for dims in self.dims])
        if m > 2 and not gemini:
            generator = torch.Generator().manual_seed(allocation_seed)
            self.register_buffer(
                'exchange_allocation',
                torch.stack([
                    make_group_allocation(m, allocation_pattern, generator)
                    for _ in range(len(num_layers))
                ]))
        else:
            self.exchange_allocation = None
        self.channel_exchange_threshold: Optional[float] = None
        self.channel_exchange_norms: List[str] = []
        if channel_exchange is not None:
            self._setup_channel_exchange(channel_exchange, num_layers,
                                         share_norms)

    def _setup_channel_exchange(self, cfg: dict, num_layers: Sequence[int],
                                share_norms: bool) -> None:
        cfg = dict(cfg)
        threshold = float(cfg.pop('threshold', 2e-2))
        norms = tuple(cfg.pop('norms', EXCHANGE_NORMS))
        stages = tuple(cfg.pop('stages', range(len(num_layers))))
        if cfg:
            raise ValueError(f'unknown channel_exchange keys {sorted(cfg)}')
        if not set(norms) <= set(EXCHANGE_NORMS) or not norms:
            raise ValueError(f'channel_exchange norms must be among '
                             f'{EXCHANGE_NORMS}, got {norms}')
        if not set(stages) <= set(range(len(num_layers))):
            raise ValueError(f'channel_exchange stages {stages} out of range')
        if self.num_modalities < 2 or share_norms:
            raise ValueError('channel_exchange needs >= 2 modalities with '
                             'their own LayerNorms (share_norms=False)')
        self.channel_exchange_threshold = threshold
        for s in sorted(stages):
            for j, block in enumerate(getattr(self, f'block{s + 1}')):
                for name in norms:
                    getattr(block, name).exchange_threshold = threshold
                    self.channel_exchange_norms.append(
                        f'block{s + 1}.{j}.{name}')

    def channel_gammas(self) -> List[torch.Tensor]:
        """The (M, C) scale factors of the channel-exchanging LayerNorms
        (empty without ``channel_exchange``)."""
        return [
            self.get_submodule(name).weight
            for name in self.channel_exchange_norms
        ]

    @staticmethod
    def _blocks_to_fuse(stage, depth, fuse_stages, fuse_blocks):
        if stage not in fuse_stages:
            return ()
        if fuse_blocks == 'all':
            return tuple(range(depth))
        if fuse_blocks == 'last':
            return (depth - 1, )
        if isinstance(fuse_blocks, dict):
            return tuple(fuse_blocks.get(stage, ()))
        raise ValueError("fuse_blocks must be 'all', 'last' or a dict")

    def forward(self, x: torch.Tensor):
        x = split_modalities(x, self.num_modalities, self.in_channels)
        b = x.shape[0] // self.num_modalities
        outs, all_scores = [], []
        last = len(self.dims) - 1
        for s in range(len(self.dims)):
            x, hw = getattr(self, f'patch_embed{s + 1}')(x)
            if self.hub:
                # (M*B, N, C) -> RGB (B, N, C) + auxiliary stream (B, N, C)
                aux = x[b:].reshape(-1, *x[:b].shape)
                scaled, stream = self.extra_score_predictor[s](aux, hw)
                x = torch.cat([x[:b], stream])
            fused = self._fused.get(s, ())
            allocation = None
            if fused and self.exchange_allocation is not None:
                allocation = allocation_for_grid(self.exchange_allocation[s],
                                                 *hw)
            for j, block in enumerate(getattr(self, f'block{s + 1}')):
                scores = None
                if j in fused:
                    # the stage's predictor scores every fused block's input
                    scores = self.score_predictor[str(s)](x)
                    all_scores.append(scores)
                x = block(x, hw, scores, self.fusion, self.fusion_threshold,
                          allocation)
            x = getattr(self, f'norm{s + 1}')(x)
            maps = x.transpose(1, 2).reshape(x.shape[0], -1, *hw)
            if s in self.out_indices:
                outs.append(maps)
            if self.hub and s < last:
                # the auxiliaries enter the next patch embedding with the
                # auxiliary stream's (normed) stage output added
                x = torch.cat([x[:b], hub_update(scaled, x[b:]).flatten(0, 1)])
                maps = x.transpose(1, 2).reshape(x.shape[0], -1, *hw)
            x = maps
        return outs, all_scores

    def init_weights(self) -> None:
        """MiT's initialisation (as mmseg / NVlabs SegFormer), then the
        checkpoint of a ``Pretrained`` ``init_cfg``."""
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
        mmseg-converted) or from a checkpoint of this model: shared layers
        get the single weights, each modality's (stream's) norms start as
        copies of the single norm; score predictors, GeminiFusion modules
        and the hub's score nets keep their random init.

        With the GeminiFusion hub all M patch-embed norm copies get the
        ImageNet norm (the DeLiVER reference's expansion only fills the
        first two, ``ln_0`` / ``ln_1``, and leaves the others at 1 / 0)."""
        checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu')
        state = checkpoint.get('state_dict',
                               checkpoint.get('model', checkpoint))
        converted = mit_to_tokenfusion(state, self.state_dict())
        missing, unexpected = self.load_state_dict(converted, strict=False)
        # not in single-stream checkpoints: predictors start random, the
        # M > 2 allocation is drawn at construction
        missing = [
            k for k in missing if not k.startswith(
                ('score_predictor', 'exchange_allocation',
                 'extra_score_predictor')) and '.attn.gemini.' not in k
        ]
        if missing or unexpected:
            raise KeyError(
                f'{path} does not fit {type(self).__name__}: missing '
                f'{missing[:8]}, unexpected {unexpected[:8]}')
        print_log(
            f'{type(self).__name__}: initialised from {path} '
            f'({len(converted)} tensors; score predictors / GeminiFusion '
            'modules random)',
            logger='current')
