"""TokenFusion's MiT computed the way the public reference code computes it.

Used by ``benchmark.py`` (its ``reference-mN`` models, behind
:class:`~tools.analysis_tools.benchmarking.models.ReferenceBackbone`) as the
baseline that :class:`FusedMiT` with a ``TokenExchange`` fusion layer
(modalities stacked in the batch, one call of every shared layer on the
(M*B) stack, ``scaled_dot_product_attention``, vectorised per-modality
norms) is compared against. The module here holds exactly the parameters
of such a ``FusedMiT`` (it is built from one, see
:meth:`ReferenceTokenFusionMiT.from_fused`) but follows the reference
formulation (``docs/tokenfusion.md``, "What the reference computes"):

* every tensor is a Python list with one (B, N, C) / (B, C, H, W) tensor per
  modality;
* a shared layer is wrapped in :class:`ModuleParallel` and called once per
  modality in a Python loop; the Mix-FFN depthwise conv is called once per
  modality as well;
* every per-modality norm is its own ``nn.LayerNorm`` (``ln_0``, ``ln_1``,
  ...) in a :class:`LayerNormParallel`;
* attention is the explicit ``softmax(q @ k^T * scale) @ v``;
* the score predictor has one ``nn.Sequential`` MLP per modality ending in
  ``LogSoftmax`` and the exchange is a boolean-mask assignment.

For M > 2 modalities the source of an exchanged token follows the group
allocation of the ``TokenExchange`` layer (:func:`allocation_for_grid`), as
the reference itself only handles M = 2. Only the reference's configuration
is supported: shared attention / Mix-FFN weights, per-modality norms, one
``TokenExchange(variant='attention')`` fusion layer.
"""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from projects.fusion_math.token_exchange import allocation_for_grid
from projects.multimodal_seg.models import FusedMiT, TokenExchange


class ModuleParallel(nn.Module):
    """One module applied to every element of a list (shared weights)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, xs: List[Tensor]) -> List[Tensor]:
        return [self.module(x) for x in xs]


class LayerNormParallel(nn.Module):
    """One ``nn.LayerNorm`` per modality, ``ln_i`` applied to element i."""

    def __init__(self, num_channels: int, num_modalities: int,
                 eps: float) -> None:
        super().__init__()
        self.num_modalities = num_modalities
        for i in range(num_modalities):
            self.add_module(f'ln_{i}', nn.LayerNorm(num_channels, eps=eps))

    def forward(self, xs: List[Tensor]) -> List[Tensor]:
        return [getattr(self, f'ln_{i}')(x) for i, x in enumerate(xs)]


class DropPath(nn.Module):
    """Stochastic depth, an independent draw per image."""

    def __init__(self, prob: float) -> None:
        super().__init__()
        self.prob = prob

    def forward(self, x: Tensor) -> Tensor:
        if self.prob == 0. or not self.training:
            return x
        keep = x.new_empty((x.shape[0], ) + (1, ) *
                           (x.ndim - 1)).bernoulli_(1 - self.prob)
        return x * keep / (1 - self.prob)


class PredictorLG(nn.Module):
    """Token score predictor: one MLP per modality in ``score_nets``."""

    def __init__(self, channels: int, num_modalities: int) -> None:
        super().__init__()
        self.score_nets = nn.ModuleList([
            nn.Sequential(
                nn.LayerNorm(channels), nn.Linear(channels, channels),
                nn.GELU(), nn.Linear(channels, channels // 2), nn.GELU(),
                nn.Linear(channels // 2, channels // 4), nn.GELU(),
                nn.Linear(channels // 4, 2), nn.LogSoftmax(dim=-1))
            for _ in range(num_modalities)
        ])

    def forward(self, xs: List[Tensor]) -> List[Tensor]:
        """Per modality the (B, N) score softmax(log-probs)[..., 0]."""
        return [
            net(x).softmax(dim=-1)[..., 0]
            for net, x in zip(self.score_nets, xs)
        ]


def token_exchange(xs: List[Tensor],
                   scores: List[Tensor],
                   threshold: float,
                   allocation: Optional[Tensor] = None) -> List[Tensor]:
    """The reference's ``TokenExchange`` by boolean-mask assignment.

    Token n of modality m is kept where its own score is >= threshold and
    replaced by modality ``src(m, n)``'s token otherwise (the other modality
    for M = 2, ``allocation[m, n]`` for M > 2).
    """
    outs = []
    for m, (x, score) in enumerate(zip(xs, scores)):
        out = torch.zeros_like(x)
        keep = score >= threshold
        out[keep] = x[keep]
        for src in range(len(xs)):
            if src == m:
                continue
            take = ~keep
            if allocation is not None:
                take = take & (allocation[m] == src).to(x.device)[None]
            out[take] = xs[src][take]
        outs.append(out)
    return outs


class Attention(nn.Module):
    """Spatial-reduction attention with the explicit softmax product."""

    def __init__(self, dims: int, num_heads: int, sr_ratio: int,
                 qkv_bias: bool, num_modalities: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dims // num_heads)**-0.5
        self.q = ModuleParallel(nn.Linear(dims, dims, bias=qkv_bias))
        self.kv = ModuleParallel(nn.Linear(dims, 2 * dims, bias=qkv_bias))
        self.proj = ModuleParallel(nn.Linear(dims, dims))
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = ModuleParallel(
                nn.Conv2d(dims, dims, sr_ratio, stride=sr_ratio))
            self.norm = LayerNormParallel(dims, num_modalities, 1e-6)

    def forward(self,
                xs: List[Tensor],
                hw: tuple,
                scores: Optional[List[Tensor]] = None,
                threshold: float = 0.02,
                allocation: Optional[Tensor] = None) -> List[Tensor]:
        b, n, c = xs[0].shape
        heads = self.num_heads
        q = [
            t.reshape(b, n, heads, c // heads).permute(0, 2, 1, 3)
            for t in self.q(xs)
        ]
        if self.sr_ratio > 1:
            reduced = [x.permute(0, 2, 1).reshape(b, c, *hw) for x in xs]
            reduced = [
                t.reshape(b, c, -1).permute(0, 2, 1) for t in self.sr(reduced)
            ]
            reduced = self.norm(reduced)
        else:
            reduced = xs
        kv = [
            t.reshape(b, -1, 2, heads, c // heads).permute(2, 0, 3, 1, 4)
            for t in self.kv(reduced)
        ]
        outs = []
        for q_m, kv_m in zip(q, kv):
            k, v = kv_m[0], kv_m[1]
            attn = (q_m @ k.transpose(-2, -1)) * self.scale
            attn = attn.softmax(dim=-1)
            outs.append((attn @ v).transpose(1, 2).reshape(b, n, c))
        outs = self.proj(outs)
        if scores is not None:
            outs = [x * s.unsqueeze(2) for x, s in zip(outs, scores)]
            outs = token_exchange(outs, scores, threshold, allocation)
        return outs


class Mlp(nn.Module):
    """Mix-FFN; the depthwise conv is called once per modality."""

    def __init__(self, dims: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = ModuleParallel(nn.Linear(dims, hidden))
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = ModuleParallel(nn.GELU())
        self.fc2 = ModuleParallel(nn.Linear(hidden, dims))

    def forward(self, xs: List[Tensor], hw: tuple) -> List[Tensor]:
        xs = self.fc1(xs)
        outs = []
        for x in xs:
            b, n, c = x.shape
            x = self.dwconv(x.transpose(1, 2).reshape(b, c, *hw))
            outs.append(x.flatten(2).transpose(1, 2))
        return self.fc2(self.act(outs))


class Block(nn.Module):

    def __init__(self, dims: int, num_heads: int, sr_ratio: int,
                 mlp_ratio: int, qkv_bias: bool, drop_path: float,
                 num_modalities: int) -> None:
        super().__init__()
        self.norm1 = LayerNormParallel(dims, num_modalities, 1e-6)
        self.attn = Attention(dims, num_heads, sr_ratio, qkv_bias,
                              num_modalities)
        self.drop_path = ModuleParallel(DropPath(drop_path))
        self.norm2 = LayerNormParallel(dims, num_modalities, 1e-6)
        self.mlp = Mlp(dims, dims * mlp_ratio)

    def forward(self,
                xs: List[Tensor],
                hw: tuple,
                scores: Optional[List[Tensor]] = None,
                threshold: float = 0.02,
                allocation: Optional[Tensor] = None) -> List[Tensor]:
        out = self.drop_path(
            self.attn(self.norm1(xs), hw, scores, threshold, allocation))
        xs = [x + y for x, y in zip(xs, out)]
        out = self.drop_path(self.mlp(self.norm2(xs), hw))
        return [x + y for x, y in zip(xs, out)]


class OverlapPatchEmbed(nn.Module):

    def __init__(self, in_channels: int, dims: int, patch_size: int,
                 stride: int, num_modalities: int) -> None:
        super().__init__()
        self.proj = ModuleParallel(
            nn.Conv2d(
                in_channels,
                dims,
                patch_size,
                stride=stride,
                padding=patch_size // 2))
        self.norm = LayerNormParallel(dims, num_modalities, 1e-6)

    def forward(self, xs: List[Tensor]):
        xs = self.proj(xs)
        hw = tuple(xs[0].shape[-2:])
        return self.norm([x.flatten(2).transpose(1, 2) for x in xs]), hw


class ReferenceTokenFusionMiT(nn.Module):
    """The fused MiT in the reference's list-of-modalities formulation.

    Build it with :meth:`from_fused`. Input: (B, M * C_in, H, W) as
    ``FusedMiT``. Output: ``(pyramids, scores)`` where ``pyramids``
    holds per modality its list of 4 maps (B, C_s, H_s, W_s) and ``scores``
    per fused block the list of per-modality (B, N_s) scores.
    :func:`stack_outputs` converts this to the layout of ``FusedMiT``'s
    features and its ``TokenExchange`` layer's scores.
    """

    def __init__(self,
                 num_modalities: int,
                 in_channels: int,
                 dims: Sequence[int],
                 num_layers: Sequence[int],
                 num_heads: Sequence[int],
                 patch_sizes: Sequence[int],
                 strides: Sequence[int],
                 sr_ratios: Sequence[int],
                 mlp_ratio: int,
                 qkv_bias: bool,
                 drop_path_rates: Sequence[float],
                 fused: dict,
                 threshold: float,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 exchange_allocation: Optional[Tensor] = None) -> None:
        super().__init__()
        m = num_modalities
        self.num_modalities = m
        self.in_channels = in_channels
        self.dims = list(dims)
        self.fused = {s: tuple(blocks) for s, blocks in fused.items()}
        self.threshold = threshold
        self.out_indices = tuple(out_indices)
        cursor = 0
        for s, depth in enumerate(num_layers):
            self.add_module(
                f'patch_embed{s + 1}',
                OverlapPatchEmbed(in_channels if s == 0 else dims[s - 1],
                                  dims[s], patch_sizes[s], strides[s], m))
            self.add_module(
                f'block{s + 1}',
                nn.ModuleList([
                    Block(dims[s], num_heads[s], sr_ratios[s], mlp_ratio,
                          qkv_bias, drop_path_rates[cursor + j], m)
                    for j in range(depth)
                ]))
            self.add_module(f'norm{s + 1}',
                            LayerNormParallel(dims[s], m, 1e-6))
            cursor += depth
        self.score_predictor = nn.ModuleDict(
            {str(s): PredictorLG(dims[s], m)
             for s in self.fused})
        if exchange_allocation is not None:
            self.register_buffer('exchange_allocation',
                                 exchange_allocation.clone())
        else:
            self.exchange_allocation = None

    @classmethod
    def from_fused(cls, model: FusedMiT) -> 'ReferenceTokenFusionMiT':
        """The reference formulation with the weights of ``model``.

        Shared layers get the single weights, the i-th ``nn.LayerNorm`` of
        every ``LayerNormParallel`` / score net row i of the (M, C)
        per-modality weights.
        """
        layers = list(model.fusion_layers)
        if len(layers) != 1 or not isinstance(layers[0], TokenExchange) \
                or layers[0].variant != 'attention':
            raise NotImplementedError(
                "only one TokenExchange(variant='attention') fusion layer "
                '(the reference)')
        exchange = layers[0]
        m = model.num_modalities
        if model.num_streams != m:
            raise NotImplementedError('only one stream per modality')
        blocks1 = model.block1[0]
        if not (blocks1.attn.q.shared and blocks1.mlp.fc1.shared):
            raise NotImplementedError('only shared attention / Mix-FFN')
        if blocks1.norm1.weight.shape[0] != m:
            raise NotImplementedError('only per-modality norms')
        num_layers = [
            len(getattr(model, f'block{s + 1}'))
            for s in range(len(model.dims))
        ]
        first = [getattr(model, f'block{s + 1}')[0] for s in range(4)]
        embeds = [getattr(model, f'patch_embed{s + 1}') for s in range(4)]
        rates = [
            block.drop_path_rate for s in range(4)
            for block in getattr(model, f'block{s + 1}')
        ]
        ref = cls(
            num_modalities=m,
            in_channels=model.in_channels,
            dims=model.dims,
            num_layers=num_layers,
            num_heads=[b.attn.num_heads for b in first],
            patch_sizes=[e.proj.weight.shape[-1] for e in embeds],
            strides=[e.proj.stride for e in embeds],
            sr_ratios=[b.attn.sr_ratio for b in first],
            mlp_ratio=first[0].mlp.fc1.out_features // model.dims[0],
            qkv_bias=first[0].attn.q.bias is not None,
            drop_path_rates=rates,
            fused=exchange.placement,
            threshold=exchange.threshold,
            out_indices=model.out_indices,
            exchange_allocation=exchange.allocation)
        ref.load_state_dict(
            tokenfusion_to_reference_state(model.state_dict(), m))
        return ref.to(next(model.parameters()).device)

    def split_modalities(self, x: Tensor) -> List[Tensor]:
        return list(x.split(self.in_channels, dim=1))

    def forward(self, x: Tensor):
        xs = self.split_modalities(x)
        b = xs[0].shape[0]
        outs: List[List[Tensor]] = [[] for _ in xs]
        all_scores = []
        for s in range(len(self.dims)):
            xs, hw = getattr(self, f'patch_embed{s + 1}')(xs)
            fused = self.fused.get(s, ())
            allocation = None
            if fused and self.exchange_allocation is not None:
                allocation = allocation_for_grid(self.exchange_allocation[s],
                                                 *hw)
            for j, block in enumerate(getattr(self, f'block{s + 1}')):
                scores = None
                if j in fused:
                    scores = self.score_predictor[str(s)](xs)
                    all_scores.append(scores)
                xs = block(xs, hw, scores, self.threshold, allocation)
            xs = getattr(self, f'norm{s + 1}')(xs)
            xs = [
                t.reshape(b, *hw, -1).permute(0, 3, 1, 2).contiguous()
                for t in xs
            ]
            if s in self.out_indices:
                for m, t in enumerate(xs):
                    outs[m].append(t)
        return outs, all_scores


def stack_outputs(pyramids: List[List[Tensor]], scores: List[List[Tensor]]):
    """Reference outputs -> ``FusedMiT``'s layout: per level
    (M*B, C, H, W) and per fused block (M, B, N)."""
    feats = [torch.cat(level, dim=0) for level in zip(*pyramids)]
    return feats, [torch.stack(s, dim=0) for s in scores]


# where FusedMiT keeps its (only) TokenExchange layer
_EXCHANGE = 'fusion_layers.0.'


def tokenfusion_to_reference_state(state: dict, num_modalities: int) -> dict:
    """Map a ``FusedMiT`` state dict (shared attention / Mix-FFN,
    per-modality norms, one ``TokenExchange`` fusion layer) to
    :class:`ReferenceTokenFusionMiT`'s keys."""
    shared = ('.attn.q.', '.attn.kv.', '.attn.proj.', '.attn.sr.', '.mlp.fc1.',
              '.mlp.fc2.', '.proj.')
    predictor_fc = {'fc1': 1, 'fc2': 3, 'fc3': 5, 'fc4': 7}
    out = {}
    for key, value in state.items():
        prefix, _, name = key.rpartition('.')
        if key == f'{_EXCHANGE}allocation':
            out['exchange_allocation'] = value
        elif key.startswith(f'{_EXCHANGE}score_predictors.'):
            stage, layer, _ = key[len(_EXCHANGE +
                                      'score_predictors.'):].split('.')
            index = 0 if layer == 'norm' else predictor_fc[layer]
            for m in range(num_modalities):
                out[f'score_predictor.{stage}.score_nets.{m}.{index}.'
                    f'{name}'] = value[m]
        elif '.mlp.dwconv' in key:
            out[key] = value
        elif any(part in key for part in shared):
            out[f'{prefix}.module.{name}'] = value
        else:  # a per-modality norm: (M, C)
            for m in range(num_modalities):
                out[f'{prefix}.ln_{m}.{name}'] = value[m]
    return out
