"""A ViT (DeiT) that merges tokens as it goes: MCTF, with ToMe as a
setting. mmpretrain's ``VisionTransformer`` with the same parameters and
names, so its checkpoints (and converted official DeiT ones) load
unchanged; only the loop over the layers differs.

At a merging layer the token count drops by r (see
:func:`projects.fusion_math.token_merging.reduction_count`). Where the
merge happens (``placement``):

* ``'one_step_ahead'`` (MCTF's default, the reference's mode 1): at the
  start of the layer, from the layer's own attention over the unmerged
  tokens; that map is merged with the tokens and applied to the values of
  the merged tokens, never recomputed;
* ``'precise'`` (mode 2): the same merge, then the attention is computed
  again on the merged tokens;
* ``'after_block'`` (mode 0): after the MLP, from the layer's attention;
* ``'after_attention'`` (ToMe): between the attention and the MLP, the
  matching metric being the layer's keys averaged over heads.

Sizes (how many patches a token stands for) are tracked, and with
``prop_attn`` every attention logit gets + log(size of the key). A layer
that merges nothing while every size is still 1 runs mmpretrain's own
layer, so r = 0 is the plain ViT bit for bit.
"""
from typing import List, NamedTuple, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.models.utils import resize_pos_embed
from mmpretrain.registry import MODELS

from projects.fusion_math import token_merging as merging

PLACEMENTS = ('one_step_ahead', 'precise', 'after_block', 'after_attention')
METRICS = ('tokens', 'keys')


class MergeTrace(NamedTuple):
    """What one forward pass merged: the token count after every layer,
    the final sizes (B, T', 1), the index of the merged token holding each
    input token (B, T_0) and, with ``trace_source``, the dense source
    matrix (B, T', T_0)."""
    tokens: List[int]
    size: Optional[torch.Tensor]
    index: torch.Tensor
    source: Optional[torch.Tensor]


def _attention_parts(layer, x: torch.Tensor, first: int = 0, count: int = 3):
    """Parts ``first .. first + count - 1`` (q, k, v) of mmpretrain's
    ``MultiheadAttention`` on normed tokens x (B, N, C): each (B, H, N, d)."""
    qkv = layer.attn.qkv
    return merging.qkv_heads(x, qkv.weight, qkv.bias, layer.attn.num_heads,
                             first, count)


def _attention_map(q: torch.Tensor, k: torch.Tensor,
                   size: Optional[torch.Tensor]) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) [+ log size of the key])."""
    return merging.attention_probs(
        q, k,
        None if size is None else merging.proportional_attention_bias(size))


def _attention_output(layer, attn: torch.Tensor,
                      v: torch.Tensor) -> torch.Tensor:
    """The attention branch of mmpretrain's ``MultiheadAttention`` for a
    given map (B, H, N, N) and values (B, H, N, d): dropout, mix, proj,
    layer scale, drop path."""
    module = layer.attn
    if module.training and module.attn_drop > 0:
        attn = F.dropout(attn, module.attn_drop)
    b, _, n, _ = v.shape
    out = (attn @ v).transpose(1, 2).reshape(b, n, module.embed_dims)
    return module.out_drop(module.gamma1(module.proj_drop(module.proj(out))))


@MODELS.register_module()
class MCTFVisionTransformer(VisionTransformer):
    """mmpretrain's ``VisionTransformer`` (e.g. ``arch='deit-small'``) with
    multi-criteria token fusion (MCTF) or ToMe in chosen layers. No new
    parameters.

    Args:
        r (int | float): Tokens removed per merging layer (the student's r
            in training): a count, or a fraction (< 1) of the unprotected
            tokens. 0 merges nothing. Defaults to 16.
        r_eval (int | float, optional): r in eval mode (default: ``r``).
        merge_layers (Sequence[int], optional): 0-based layers that merge.
            Defaults to every layer but the first (MCTF: blocks 1-11 of
            DeiT).
        placement (str): One of :data:`PLACEMENTS`. Defaults to
            ``'one_step_ahead'``.
        metric (str): What the similarity compares: ``'tokens'`` (the
            layer's input tokens, MCTF) or ``'keys'`` (the layer's keys
            averaged over heads, ToMe; needs ``'after_attention'``).
        tau_sim, tau_info, tau_size (float): Temperatures of the
            similarity, informativeness and size criteria (the criterion is
            raised to 1/τ; 0 leaves it out). Defaults to MCTF's 1, 20, 40.
        bidirectional (bool): Bidirectional matching. Defaults to True.
        pooling (str): ``'attention_size'`` (MCTF, default), ``'size'``
            (ToMe), ``'max'`` or ``'mean'``.
        prop_attn (bool): Proportional attention. Defaults to True.
        overflow (str): An r that the safeguards would lower at some layer:
            ``'error'`` (default) or ``'clamp'`` (the reference).
        trace_source (bool): Keep the dense source matrix of the last
            forward in :attr:`last_trace` (for pictures). Defaults to False.
        **kwargs: mmpretrain ``VisionTransformer`` arguments;
            ``out_type`` must be ``'cls_token'`` (the patch grid is gone
            after merging).
    """

    def __init__(self,
                 *args,
                 r: Union[int, float] = 16,
                 r_eval: Union[None, int, float] = None,
                 merge_layers: Optional[Sequence[int]] = None,
                 placement: str = 'one_step_ahead',
                 metric: str = 'tokens',
                 tau_sim: float = 1.,
                 tau_info: float = 20.,
                 tau_size: float = 40.,
                 bidirectional: bool = True,
                 pooling: str = 'attention_size',
                 prop_attn: bool = True,
                 overflow: str = 'error',
                 trace_source: bool = False,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.out_type != 'cls_token':
            raise ValueError(f'MCTFVisionTransformer needs out_type='
                             f"'cls_token', got {self.out_type!r}: after "
                             'merging the tokens no longer form a grid')
        merging.check_choice('placement', placement, PLACEMENTS)
        merging.check_choice('metric', metric, METRICS)
        merging.check_choice('pooling', pooling, merging.POOLING)
        merging.check_choice('overflow', overflow, merging.OVERFLOW)
        if metric == 'keys' and placement != 'after_attention':
            raise ValueError("metric='keys' (ToMe) needs placement="
                             "'after_attention': the keys are those of the "
                             'attention that ran on the unmerged tokens')
        self.criteria = merging.MergeCriteria(tau_sim, tau_info, tau_size,
                                              bidirectional)
        merging.check_criteria(self.criteria)
        self.merge_layers = list(
            merging.merge_layer_indices(merge_layers, self.num_layers))
        self.r = r
        self.r_eval = r_eval
        merging.check_r(r, 'r')
        if r_eval is not None:
            merging.check_r(r_eval, 'r_eval')
        self.placement = placement
        self.metric = metric
        self.pooling = pooling
        self.prop_attn = prop_attn
        self.overflow = overflow
        self.trace_source = trace_source
        self.last_trace: Optional[MergeTrace] = None

    # ------------------------------------------------------------------
    def token_counts(self,
                     num_tokens: Optional[int] = None,
                     r: Union[None, int, float] = None) -> List[int]:
        """Tokens entering the first layer, then after every layer, for an
        input of ``num_tokens`` tokens (default: the configured image
        size) and ``r`` (default: this mode's r). The safeguards apply as
        in :meth:`forward`."""
        if num_tokens is None:
            h, w = self.patch_resolution
            num_tokens = h * w + self.num_extra_tokens
        r = self._pass_r(r)
        counts = [num_tokens]
        for i in range(self.num_layers):
            counts.append(counts[-1] - self._layer_r(i, counts[-1], r))
        return counts

    def _pass_r(self, r):
        if r is not None:
            return r
        if not self.training and self.r_eval is not None:
            return self.r_eval
        return self.r

    def _layer_r(self, i: int, num_tokens: int, r) -> int:
        if i not in self.merge_layers or not r:
            return 0
        try:
            return merging.reduction_count(num_tokens, r,
                                           self.num_extra_tokens,
                                           self.overflow)
        except ValueError as exc:
            raise ValueError(f'layer {i}: {exc}') from None

    # ------------------------------------------------------------------
    def forward(self, x: torch.Tensor, r: Union[None, int, float] = None):
        """Like mmpretrain's forward; ``r`` overrides the configured r for
        this pass (the consistency training's teacher pass)."""
        r = self._pass_r(r)
        batch = x.shape[0]
        x, patch_resolution = self.patch_embed(x)
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(batch, -1, -1), x), dim=1)
        x = x + resize_pos_embed(
            self.pos_embed,
            self.patch_resolution,
            patch_resolution,
            mode=self.interpolate_mode,
            num_extra_tokens=self.num_extra_tokens)
        x = self.pre_norm(self.drop_after_pos(x))

        num_input = x.shape[1]
        state = dict(
            size=None,
            index=torch.arange(num_input, device=x.device).expand(batch, -1),
            source=None)
        counts = [num_input]
        outs = []
        for i, layer in enumerate(self.layers):
            x = self._layer_forward(layer, x, self._layer_r(i, x.shape[1], r),
                                    state)
            counts.append(x.shape[1])
            if i == len(self.layers) - 1 and self.final_norm:
                x = self.ln1(x)
            if i in self.out_indices:
                outs.append(x[:, 0])
        self.last_trace = MergeTrace(counts, state['size'], state['index'],
                                     state['source'])
        return tuple(outs)

    # ------------------------------------------------------------------
    def _merge(self, state: dict, x: torch.Tensor, metric: torch.Tensor,
               attn: torch.Tensor, r: int):
        """Match on ``metric``, pool ``x``; update the sizes, the index and
        the source of ``state``. Returns the matching, the merged x and the
        sizes before the merge."""
        size = state['size']
        scores = merging.merge_scores(metric, self.criteria, attn, size,
                                      self.num_extra_tokens)
        matching = merging.bipartite_matching(scores, r,
                                              self.criteria.bidirectional,
                                              self.num_extra_tokens)
        if size is None:
            size = x.new_ones(x.shape[0], x.shape[1], 1)
        x, state['size'] = merging.pool_tokens(matching, x, size, self.pooling,
                                               attn)
        state['index'] = merging.compose_index(state['index'],
                                               merging.merge_index(matching))
        if self.trace_source:
            state['source'] = merging.merge_source(matching, state['source'],
                                                   x.shape[0])
        return matching, x, size

    def _layer_forward(self, layer, x: torch.Tensor, r: int,
                       state: dict) -> torch.Tensor:
        size = state['size'] if self.prop_attn else None
        if r == 0 and state['size'] is None:
            return layer(x)  # mmpretrain's layer, untouched
        if r == 0 or self.placement in ('after_block', 'after_attention'):
            q, k, v = _attention_parts(layer, layer.ln1(x))
            attn = _attention_map(q, k, size)
            x = x + _attention_output(layer, attn, v)
            if r and self.placement == 'after_attention':
                metric = k.mean(dim=1) if self.metric == 'keys' else x
                x = self._merge(state, x, metric, attn, r)[1]
            x = layer.ffn(layer.ln2(x), identity=x)
            if r and self.placement == 'after_block':
                x = self._merge(state, x, x, attn, r)[1]
            return x
        if self.placement == 'precise':
            with torch.no_grad():
                attn = _attention_map(
                    *_attention_parts(layer, layer.ln1(x), count=2), size)
            x = self._merge(state, x, x, attn, r)[1]
            size = state['size'] if self.prop_attn else None
            q, k, v = _attention_parts(layer, layer.ln1(x))
            x = x + _attention_output(layer, _attention_map(q, k, size), v)
            return layer.ffn(layer.ln2(x), identity=x)
        # one step ahead: merge with this layer's attention, then reuse it
        attn = _attention_map(*_attention_parts(layer, layer.ln1(x), count=2),
                              size)
        matching, x, old_size = self._merge(state, x, x, attn, r)
        attn = merging.merge_attention(matching, attn, old_size, self.pooling)
        x = x + _attention_output(
            layer, attn,
            _attention_parts(layer, layer.ln1(x), first=2, count=1)[0])
        return layer.ffn(layer.ln2(x), identity=x)
