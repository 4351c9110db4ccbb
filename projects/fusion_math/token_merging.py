"""Token merging inside a ViT: MCTF (multi-criteria token fusion, Lee et
al., CVPR 2024) with ToMe (Bolya et al., ICLR 2023) as one of its
settings, as small functions on tensors.

One merge step of a block, on tokens ``x`` (B, T, C) with sizes ``size``
(B, T, 1) (how many input patches each token stands for) and the block's
attention ``attn`` (B, H, T, T):

1. :func:`reduction_count`: how many tokens to remove, r, from the
   configured r (a count, or a fraction of the unprotected tokens when
   below 1) and the safeguards (at most half of the unprotected tokens, at
   least 10 tokens left).
2. :func:`merge_scores`: the attraction W (B, T_a, T_b) between the tokens
   at even positions (set A, holding the protected tokens) and those at odd
   positions (set B), the product of three criteria, each raised to 1/τ
   (τ = 0 switches the criterion off):

   * similarity ``((cos(x_i, x_j) + 1) / 2) ** (1 / tau_sim)``;
   * informativeness ``(u_i u_j) ** (1 / tau_info)`` with ``u`` the
     inverse of the attention a token receives (mean over heads and
     queries), divided by its maximum: tokens nobody looks at merge first;
   * size ``(v_i v_j) ** (1 / tau_size)`` with ``v = (1 / s) / max(1 / s)``:
     tokens that already stand for many patches merge last.

   The rows of the protected tokens (the class token) are -inf.
3. :func:`bipartite_matching`: each A token's best B partner; the
   ``r // 2`` A tokens with the best edges merge into their partners (all
   r in the unidirectional matching). Bidirectionally, the remaining
   ``r - r // 2`` merges go the other way: each B token (including those
   that just absorbed A tokens) picks its best A token among those left,
   with the same scores, and the best edges merge. Output order: the kept
   A tokens in index order, then the B tokens (unidirectional: in index
   order; bidirectional: the kept ones in descending order of their step-2
   edge, as the reference writes them -- this order sets the next merge's
   even / odd split).
4. :func:`merge_tokens` applies a :class:`Matching` to any tensor whose
   dimension -2 is the token dimension (tokens, sizes, the key or query
   dimension of an attention map, a source matrix);
   :func:`pool_tokens` / :func:`merge_attention` pool the features and the
   attention with one set of token weights (see :data:`POOLING`), so that
   rows of a merged attention map still sum to 1 (except for max pooling);
   :func:`merge_index` / :func:`unmerge` map every input token to the
   merged token that holds it, through any number of steps.

ToMe is the setting: metric = the keys of the block (mean over heads),
``tau_sim=1, tau_info=0, tau_size=0``, unidirectional, size-weighted
pooling, merged between the attention and the MLP (:data:`TOME`).
"""
import math
from typing import NamedTuple, Optional, Tuple, Union

import torch
import torch.nn.functional as F

# Token weights of the pooling types (the reference's pooling_type index):
# a merged token is the weighted mean of its members (or their maximum).
POOLING = ('size', 'attention_size', 'max', 'mean')
MIN_TOKENS = 10  # the reference keeps at least this many tokens
OVERFLOW = ('error', 'clamp')


class MergeCriteria(NamedTuple):
    """Temperatures of the three criteria (0 switches one off) and the
    matching direction. ``MCTF`` and ``TOME`` are the two standard ones."""
    tau_sim: float = 1.
    tau_info: float = 20.
    tau_size: float = 40.
    bidirectional: bool = True


MCTF = MergeCriteria(1., 20., 40., True)
TOME = MergeCriteria(1., 0., 0., False)


class Matching(NamedTuple):
    """Index tensors of one merge step (all (B, n) int64, per image).

    ``unm_idx`` / ``src_idx``: A tokens kept / merged in step 1 (indices
    into A); ``dst_idx``: the B token each merged A token went to.
    Bidirectional only: ``src_idx2`` / ``dst_idx2``: B tokens merged in
    step 2 and the kept-A slot (index into ``unm_idx``) each went to;
    ``rest_idx2``: the B tokens kept, in output order.
    """
    num_tokens: int
    unm_idx: torch.Tensor
    src_idx: torch.Tensor
    dst_idx: torch.Tensor
    src_idx2: Optional[torch.Tensor] = None
    dst_idx2: Optional[torch.Tensor] = None
    rest_idx2: Optional[torch.Tensor] = None

    @property
    def bidirectional(self) -> bool:
        return self.src_idx2 is not None

    @property
    def num_merged(self) -> int:
        """Number of output tokens."""
        r = self.src_idx.shape[1]
        if self.bidirectional:
            r += self.src_idx2.shape[1]
        return self.num_tokens - r


# ----------------------------------------------------------------------------
# how many tokens


def check_choice(name: str, value, choices) -> None:
    """A setting that must be one of ``choices``."""
    if value not in choices:
        raise ValueError(f'{name} must be one of {tuple(choices)}, got '
                         f'{value!r}')


def check_r(r: Union[int, float], name: str = 'r') -> None:
    """A configured r is a count (an integer >= 1), a fraction in [0, 1)
    or 0."""
    if isinstance(r, bool) or not isinstance(
            r, (int, float)) or r < 0 or (r >= 1 and r != int(r)):
        raise ValueError(f'{name} must be a count (an integer >= 1), a '
                         f'fraction in [0, 1) or 0, got {r!r}')


def reduction_count(num_tokens: int,
                    r: Union[int, float],
                    num_protected: int = 1,
                    overflow: str = 'error') -> int:
    """Tokens to remove from ``num_tokens`` for a configured ``r``.

    ``r >= 1`` is a count; ``0 <= r < 1`` a fraction of the unprotected
    tokens (``floor((T - P) * r)``). Safeguards of the reference: at most
    ``floor((T - P) / 2)`` are removed (one merge per pair), and ``T - r
    < 10`` lowers r to ``T - 10`` -- tested on the configured r, so a count
    leaves at least :data:`MIN_TOKENS` tokens and a fraction merges nothing
    at 10 tokens or fewer.

    Args:
        overflow (str): ``'error'``: an r that a safeguard would lower is
            an error naming it; ``'clamp'``: lower it silently, as the
            reference does.
    """
    check_choice('overflow', overflow, OVERFLOW)
    check_r(r)
    if not 0 <= num_protected < num_tokens:
        raise ValueError(f'{num_protected} protected tokens do not fit '
                         f'{num_tokens} tokens')
    free = num_tokens - num_protected
    if r >= 1:
        count = int(r)
        cap = min(free // 2, max(num_tokens - MIN_TOKENS, 0))
    else:  # the reference tests T - r < 10 on the fraction itself
        count = int(free * r)
        cap = free // 2 if num_tokens > MIN_TOKENS else 0
    if count > cap:
        if overflow == 'error':
            raise ValueError(
                f'r={r} removes {count} of {num_tokens} tokens '
                f'({num_protected} protected); at most {cap} can be merged '
                f'(half of the unprotected tokens, {MIN_TOKENS} left): '
                "lower r or set the overflow to 'clamp'")
        count = cap
    return count


def merge_layer_indices(layers,
                        num_layers: int,
                        name: str = 'merge_layers') -> Tuple[int, ...]:
    """The sorted 0-based layers that merge (default: every layer but the
    first, MCTF's blocks 1 .. L-1), checked against ``num_layers``."""
    layers = range(1, num_layers) if layers is None else layers
    layers = tuple(sorted(set(int(i) for i in layers)))
    bad = [i for i in layers if not 0 <= i < num_layers]
    if bad:
        raise ValueError(f'{name} {bad} are not layers of a {num_layers}-'
                         'layer ViT')
    return layers


# ----------------------------------------------------------------------------
# criteria and matching


def check_criteria(criteria: MergeCriteria) -> None:
    """Temperatures are >= 0 (0 switches a criterion off)."""
    for name in ('tau_sim', 'tau_info', 'tau_size'):
        if getattr(criteria, name) < 0:
            raise ValueError(f'{name} must be >= 0 (0 switches the '
                             f'criterion off), got {getattr(criteria, name)}')


def received_attention(attn: torch.Tensor) -> torch.Tensor:
    """Attention each token receives: mean over heads and queries of
    ``attn`` (B, H, T_q, T_k) -> (B, T_k)."""
    return attn.mean(dim=(1, 2))


def _pair_product(values: torch.Tensor, tau: float) -> torch.Tensor:
    """(v_a v_b^T) ** (1 / tau) over the A / B split of ``values`` (B, T)."""
    return (values[:, 0::2, None] * values[:, None, 1::2])**(1 / tau)


@torch.no_grad()
def merge_scores(x: torch.Tensor,
                 criteria: MergeCriteria = MCTF,
                 attn: Optional[torch.Tensor] = None,
                 size: Optional[torch.Tensor] = None,
                 num_protected: int = 1,
                 received: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The attraction W (B, T_a, T_b) between A (even) and B (odd) tokens.

    Args:
        x (Tensor): (B, T, C) the matching metric: MCTF's block-input
            tokens, ToMe's keys averaged over heads.
        criteria (MergeCriteria): Temperatures; a criterion whose τ is 0,
            or whose input (``attn``, ``size``) is None, is left out.
        attn (Tensor, optional): (B, H, T, T) the block's attention.
        size (Tensor, optional): (B, T, 1) token sizes.
        num_protected (int): Leading tokens never merged (their rows are
            -inf; they are A tokens for ``num_protected <= 1``).
        received (Tensor, optional): (B, T) the attention each token
            receives, for the informativeness instead of the mean over all
            queries of ``attn`` (YOLOS: from its detection tokens only).
    """
    check_criteria(criteria)
    if num_protected > 1:
        raise ValueError('only the first token (position 0, in A) can be '
                         f'protected, got num_protected={num_protected}: a '
                         'second protected token (a distillation token) '
                         'would be a B token')
    unit = x / x.norm(dim=-1, keepdim=True)
    if criteria.tau_sim:
        cosine = unit[:, 0::2] @ unit[:, 1::2].transpose(1, 2)
        scores = ((cosine + 1) / 2)**(1 / criteria.tau_sim)
    else:
        scores = x.new_ones(x.shape[0], (x.shape[1] + 1) // 2, x.shape[1] // 2)
    if received is None and attn is not None:
        received = received_attention(attn)
    if criteria.tau_info and received is not None:
        inverse = 1 / received
        inverse = inverse / inverse.amax(dim=1, keepdim=True)
        scores = scores * _pair_product(inverse, criteria.tau_info)
    if criteria.tau_size and size is not None:
        inverse = 1 / size[..., 0]
        inverse = inverse / inverse.amax(dim=1, keepdim=True)
        scores = scores * _pair_product(inverse, criteria.tau_size)
    if num_protected:
        scores[:, :num_protected] = -math.inf
    return scores


@torch.no_grad()
def bipartite_matching(scores: torch.Tensor,
                       r: int,
                       bidirectional: bool = True,
                       num_protected: int = 1) -> Matching:
    """Choose the r merges from the attraction ``scores`` (B, T_a, T_b)
    (see the module doc for the two steps and the output order)."""
    batch, t_a, t_b = scores.shape
    num_tokens = t_a + t_b
    if not 0 <= r <= (num_tokens - num_protected) // 2:
        raise ValueError(f'cannot merge {r} of {num_tokens} tokens '
                         f'({num_protected} protected)')
    r1 = r // 2 if bidirectional else r
    best, partner = scores.max(dim=-1)  # (B, T_a)
    order = best.argsort(dim=-1, descending=True, stable=True)
    unm_idx, src_idx = order[:, r1:], order[:, :r1]
    dst_idx = partner.gather(1, src_idx)
    if num_protected:  # the class token first
        unm_idx = unm_idx.sort(dim=1)[0]
    if not bidirectional:
        return Matching(num_tokens, unm_idx, src_idx, dst_idx)
    r2 = r - r1
    # B -> kept A, the same scores
    kept = scores.gather(1, unm_idx[..., None].expand(-1, -1, t_b))
    best2, partner2 = kept.transpose(1, 2).max(dim=-1)  # (B, T_b)
    order2 = best2.argsort(dim=-1, descending=True, stable=True)
    src_idx2, rest_idx2 = order2[:, :r2], order2[:, r2:]
    return Matching(num_tokens, unm_idx, src_idx, dst_idx, src_idx2,
                    partner2.gather(1, src_idx2), rest_idx2)


# ----------------------------------------------------------------------------
# applying a matching


def _take(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows ``index`` (B, n) of dimension -2 of ``t`` (B, ..., T, C)."""
    shape = (index.shape[0], ) + (1, ) * (t.dim() - 3) + (index.shape[1], 1)
    return t.gather(
        -2,
        index.view(shape).expand(*t.shape[:-2], index.shape[1], t.shape[-1]))


def _reduce_into(t: torch.Tensor, index: torch.Tensor, src: torch.Tensor,
                 reduce: str) -> torch.Tensor:
    """``t`` with the rows of ``src`` reduced into its rows ``index``."""
    shape = (index.shape[0], ) + (1, ) * (t.dim() - 3) + (index.shape[1], 1)
    return t.scatter_reduce(-2, index.view(shape).expand_as(src), src, reduce)


def merge_tokens(matching: Matching,
                 x: torch.Tensor,
                 reduce: str = 'sum',
                 start: int = 0) -> torch.Tensor:
    """Merge dimension -2 of ``x`` (B, ..., T, C) -> (B, ..., T', C):
    each output row is the ``reduce`` (``'sum'``, ``'amax'``, ...) of the
    input rows merged into it.

    ``start``: the matching covers rows ``start .. start + num_tokens - 1``
    only (a span, e.g. YOLOS's patch tokens between its class token and its
    detection tokens); the rows before and after it pass unchanged.
    """
    stop = start + matching.num_tokens
    if start or x.shape[-2] != matching.num_tokens:
        if start < 0 or stop > x.shape[-2]:
            raise ValueError(
                f'the matching is for {matching.num_tokens} tokens from row '
                f'{start}, got a tensor of shape {tuple(x.shape)}')
        return torch.cat([
            x[..., :start, :],
            merge_tokens(matching, x[..., start:stop, :], reduce), x[...,
                                                                     stop:, :]
        ],
                         dim=-2)
    a, b = x[..., 0::2, :], x[..., 1::2, :]
    kept = _take(a, matching.unm_idx)
    b = _reduce_into(b, matching.dst_idx, _take(a, matching.src_idx), reduce)
    if not matching.bidirectional:
        return torch.cat([kept, b], dim=-2)
    kept = _reduce_into(kept, matching.dst_idx2, _take(b, matching.src_idx2),
                        reduce)
    return torch.cat([kept, _take(b, matching.rest_idx2)], dim=-2)


def token_weights(pooling: str,
                  size: torch.Tensor,
                  attn: Optional[torch.Tensor] = None,
                  received: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Pooling weights (B, T, 1) of the tokens (detached): ``'size'``: s;
    ``'attention_size'``: received attention (``received`` (B, T), or the
    mean over the heads and queries of ``attn``) x s / max(s); ``'mean'``:
    1 (``'max'`` has none)."""
    if pooling not in POOLING or pooling == 'max':
        raise ValueError(f'no token weights for pooling {pooling!r}; '
                         f'weighted poolings: {POOLING[:2] + POOLING[3:]}')
    size = size.detach()
    if pooling == 'size':
        return size
    if pooling == 'mean':
        return torch.ones_like(size)
    if received is None:
        if attn is None:
            raise ValueError(
                "pooling 'attention_size' needs the attention map")
        received = received_attention(attn.detach())
    return received.detach()[..., None] * size / size.amax(dim=1, keepdim=True)


def _span_weights(weights: torch.Tensor, total: int,
                  start: int) -> torch.Tensor:
    """Weights (B, n, 1) of a span, padded with ones to (B, total, 1): the
    tokens outside the span keep their values exactly (x * 1 / 1)."""
    if start == 0 and weights.shape[1] == total:
        return weights
    before = weights.new_ones(weights.shape[0], start, 1)
    after = weights.new_ones(weights.shape[0],
                             total - start - weights.shape[1], 1)
    return torch.cat([before, weights, after], dim=1)


def pool_tokens(matching: Matching,
                x: torch.Tensor,
                size: torch.Tensor,
                pooling: str = 'attention_size',
                attn: Optional[torch.Tensor] = None,
                received: Optional[torch.Tensor] = None,
                start: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Merged tokens (B, T', C) and sizes (B, T', 1): a merged token is
    the weighted mean of its members (:func:`token_weights`) or, for
    ``'max'``, their element-wise maximum; sizes add up.

    With a span (``start``, see :func:`merge_tokens`), ``size`` and
    ``received`` are those of the span's tokens and the returned sizes too;
    ``x`` is the whole sequence.
    """
    new_size = merge_tokens(matching, size.detach())
    if pooling == 'max':
        return merge_tokens(matching, x, 'amax', start), new_size
    weights = _span_weights(
        token_weights(pooling, size, attn, received), x.shape[1], start)
    pooled = merge_tokens(
        matching, x * weights, start=start) / merge_tokens(
            matching, weights, start=start)
    return pooled, new_size


def merge_attention(matching: Matching,
                    attn: torch.Tensor,
                    size: torch.Tensor,
                    pooling: str = 'attention_size',
                    received: Optional[torch.Tensor] = None,
                    start: int = 0) -> torch.Tensor:
    """Merge an attention map (B, H, T, T) -> (B, H, T', T') with its
    tokens: the key columns of a group add up (its probability mass), the
    query rows are pooled as :func:`pool_tokens` pools the tokens, so the
    rows still sum to 1 (not for ``'max'``, the row-wise maximum). A span
    (``start``, ``size`` and ``received`` of the span) merges only its rows
    and columns."""
    if pooling == 'attention_size' and received is None and \
            size.shape[1] != attn.shape[-1]:
        raise ValueError('merging the span of an attention map with '
                         "'attention_size' pooling needs the span's received "
                         'attention')
    columns = merge_tokens(matching, attn[..., None], start=start)[..., 0]
    if pooling == 'max':
        return merge_tokens(matching, columns, 'amax', start)
    weights = _span_weights(
        token_weights(pooling, size, attn, received), attn.shape[-1],
        start)[:, None]  # (B, 1, T, 1)
    return merge_tokens(
        matching, columns * weights, start=start) / merge_tokens(
            matching, weights, start=start)


@torch.no_grad()
def merge_source(matching: Matching,
                 source: Optional[torch.Tensor] = None,
                 batch: Optional[int] = None) -> torch.Tensor:
    """Dense source matrix (B, T', T_0): 1 where merged token i holds input
    patch j. ``source`` is that of the previous step (the identity for the
    first one, which needs ``batch``)."""
    if source is None:
        eye = torch.eye(matching.num_tokens, device=matching.unm_idx.device)
        source = eye.expand(batch or matching.unm_idx.shape[0], -1, -1)
    return merge_tokens(matching, source, 'amax')


@torch.no_grad()
def merge_index(matching: Matching) -> torch.Tensor:
    """(B, T) int64: the merged token (0 .. T' - 1) that holds each input
    token of one step."""
    unm, src, dst = matching.unm_idx, matching.src_idx, matching.dst_idx
    batch, kept = unm.shape
    t_a = (matching.num_tokens + 1) // 2
    t_b = matching.num_tokens // 2
    slots = torch.arange(kept, device=unm.device).expand(batch, -1)
    out_b = torch.empty(batch, t_b, dtype=torch.long, device=unm.device)
    if matching.bidirectional:
        rest = matching.rest_idx2
        out_b.scatter_(1, matching.src_idx2, matching.dst_idx2)
        out_b.scatter_(
            1, rest, kept +
            torch.arange(rest.shape[1], device=unm.device).expand(batch, -1))
    else:
        out_b[:] = kept + torch.arange(t_b, device=unm.device)
    out_a = torch.empty(batch, t_a, dtype=torch.long, device=unm.device)
    out_a.scatter_(1, unm, slots)
    out_a.scatter_(1, src, out_b.gather(1, dst))
    index = torch.empty(
        batch, matching.num_tokens, dtype=torch.long, device=unm.device)
    index[:, 0::2] = out_a
    index[:, 1::2] = out_b
    return index


def compose_index(first: torch.Tensor, then: torch.Tensor) -> torch.Tensor:
    """Index map of two steps: input token -> token after ``first`` ->
    token after ``then``."""
    return then.gather(1, first)


def unmerge(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Copy every merged token (B, T', C) back to each input position it
    holds: (B, T_0, C), with ``index`` (B, T_0) from :func:`merge_index`
    (composed over steps with :func:`compose_index`)."""
    return x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))


def qkv_heads(x: torch.Tensor,
              weight: torch.Tensor,
              bias: Optional[torch.Tensor],
              num_heads: int,
              first: int = 0,
              count: int = 3) -> Tuple[torch.Tensor, ...]:
    """Parts ``first .. first + count - 1`` (0 q, 1 k, 2 v) of a fused qkv
    projection (``weight`` (3C, C), ``bias`` (3C,)) of tokens x (B, N, C),
    split into heads: a tuple of (B, H, N, C / H). Only the rows of the
    parts asked for are computed (the one-step-ahead attention needs no
    values of the unmerged tokens, the merged tokens no queries or keys)."""
    channels = weight.shape[1]
    rows = slice(first * channels, (first + count) * channels)
    out = F.linear(x, weight[rows], None if bias is None else bias[rows])
    batch, num, _ = x.shape
    return tuple(
        out.reshape(batch, num, count, num_heads,
                    channels // num_heads).permute(2, 0, 3, 1, 4))


def attention_probs(q: torch.Tensor,
                    k: torch.Tensor,
                    bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) [+ bias]) for (B, H, N, d) queries and keys,
    e.g. with :func:`proportional_attention_bias`."""
    logits = (q @ k.transpose(-2, -1)) * q.shape[-1]**-0.5
    if bias is not None:
        logits = logits + bias
    return logits.softmax(dim=-1)


def proportional_attention_bias(size: torch.Tensor) -> torch.Tensor:
    """log(s) of every key, to add to the attention logits (B, H, T_q, T):
    a token standing for s patches gets the attention s copies would get.
    ``size`` (B, T, 1) -> (B, 1, 1, T)."""
    return size.log()[:, None, None, :, 0]


def group_mean(index: torch.Tensor, x: torch.Tensor,
               size: torch.Tensor) -> torch.Tensor:
    """Mean of the input tokens (B, T_0, C) that each merged token holds:
    (B, T', C), with ``index`` (B, T_0) from :func:`merge_index` (composed
    over steps) and ``size`` (B, T', 1) the members per merged token. A
    per-input quantity (YOLOS's mid-layer position embeddings) follows the
    merges this way."""
    sums = x.new_zeros(index.shape[0], size.shape[1], x.shape[-1])
    sums.scatter_add_(1, index[..., None].expand(-1, -1, x.shape[-1]),
                      x.expand(index.shape[0], -1, -1))
    return sums / size


# ----------------------------------------------------------------------------
# merging on a 2D grid, undone inside the block (dense backbones)


class GridMerge(NamedTuple):
    """A merge of the N tokens of an H x W grid (per image, shared by every
    stream of a modality stack): ``index`` (B, N) int64 the merged token
    (0 .. N' - 1) holding each input token, ``size`` (B, N', 1) the members
    of each merged token. The destinations come first, one per stride cell
    in row-major cell order, then the unmerged other tokens in grid
    order."""
    index: torch.Tensor
    size: torch.Tensor

    @property
    def num_merged(self) -> int:
        return self.size.shape[1]


def check_grid_ratio(ratio: float, stride: Tuple[int, int]) -> None:
    """A grid merge removes a fraction ``ratio`` of the tokens, at most every
    token that is not a destination: ``1 - 1 / (sy * sx)``."""
    most = 1 - 1 / (stride[0] * stride[1])
    if isinstance(ratio, bool) or not 0 <= ratio <= most:
        raise ValueError(f'ratio must be in [0, {most:g}] for destinations '
                         f'strided {tuple(stride)} (one per cell), got '
                         f'{ratio!r}')


def grid_destinations(hw: Tuple[int, int],
                      stride: Tuple[int, int],
                      device=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Row-major indices of the destination tokens (the top-left token of
    every ``sy x sx`` cell, edge cells included) and of the other tokens of
    an H x W grid."""
    h, w = hw
    rows = torch.arange(h, device=device)
    cols = torch.arange(w, device=device)
    is_dst = ((rows[:, None] % stride[0] == 0) &
              (cols[None] % stride[1] == 0)).flatten()
    return is_dst.nonzero()[:, 0], (~is_dst).nonzero()[:, 0]


def _neighbour_cells(hw: Tuple[int, int], stride: Tuple[int, int],
                     src: torch.Tensor, radius: int) -> torch.Tensor:
    """(n_src, K) destination indices of the cells within ``radius`` cells
    of each source token's own cell (clamped at the border)."""
    w = hw[1]
    cells_h = -(-hw[0] // stride[0])
    cells_w = -(-w // stride[1])
    cell_r = (src // w) // stride[0]
    cell_c = (src % w) // stride[1]
    offsets = torch.arange(-radius, radius + 1, device=src.device)
    near_r = (cell_r[:, None] + offsets).clamp(0, cells_h - 1)
    near_c = (cell_c[:, None] + offsets).clamp(0, cells_w - 1)
    return (near_r[:, :, None] * cells_w + near_c[:, None, :]).flatten(1)


@torch.no_grad()
def grid_matching(metric: torch.Tensor,
                  hw: Tuple[int, int],
                  ratio: float,
                  stride: Tuple[int, int] = (2, 2),
                  radius: Optional[int] = 1) -> GridMerge:
    """One merge map for all streams of an H x W token grid.

    Every token that is not a destination (:func:`grid_destinations`)
    picks its most similar destination -- the cosine similarity averaged
    over the streams, so that aligned tokens of all modalities merge
    together -- among those of its own and the ``radius`` surrounding
    cells (every destination when ``radius`` is None); the
    ``floor(N * ratio)`` tokens with the best edges (at most all
    non-destinations) merge into theirs.

    Args:
        metric (Tensor): (S, B, N, C) or (B, N, C) the tokens compared.
        hw (tuple[int, int]): (H, W), N = H * W.
        ratio (float): Fraction of the tokens to remove.
        stride (tuple[int, int]): Cell size (sy, sx).
        radius (int, optional): Search window in cells.

    Returns:
        GridMerge
    """
    check_grid_ratio(ratio, stride)
    if metric.dim() == 3:
        metric = metric[None]
    streams, batch, num, _ = metric.shape
    if num != hw[0] * hw[1]:
        raise ValueError(f'{num} tokens do not form a {hw[0]}x{hw[1]} grid')
    device = metric.device
    dst, src = grid_destinations(hw, stride, device)
    unit = metric / metric.norm(dim=-1, keepdim=True)
    if radius is None:
        candidates = None
        similarity = unit[:, :, src] @ unit[:, :, dst].transpose(-1, -2)
    else:
        candidates = _neighbour_cells(hw, stride, src, radius)
        # a batched matmul, (1 x C) @ (C x K) per token, so that cost
        # counters see the matching
        similarity = (unit[:, :, src, None]
                      @ unit[:, :, dst[candidates]].transpose(-1, -2))[...,
                                                                       0, :]
    best, choice = similarity.mean(dim=0).max(dim=-1)  # (B, n_src)
    partner = choice if candidates is None else candidates.expand(
        batch, -1, -1).gather(2, choice[..., None])[..., 0]
    r = min(int(num * ratio), src.numel())
    order = best.argsort(dim=-1, descending=True, stable=True)
    merged = torch.zeros_like(best, dtype=torch.bool)
    merged.scatter_(1, order[:, :r], True)
    kept_slot = dst.numel() + (~merged).long().cumsum(dim=1) - 1
    index = torch.empty(batch, num, dtype=torch.long, device=device)
    index[:, dst] = torch.arange(dst.numel(), device=device)
    index[:, src] = torch.where(merged, partner, kept_slot)
    size = metric.new_zeros(batch, num - r, 1)
    size.scatter_add_(1, index[..., None], metric.new_ones(batch, num, 1))
    return GridMerge(index, size)


def group_first(merge: GridMerge) -> torch.Tensor:
    """(B, N') the first grid position (row-major) of every merged token,
    for per-position integer maps that cannot be averaged."""
    batch, num = merge.index.shape
    positions = torch.arange(num, device=merge.index.device).expand(batch, -1)
    first = positions.new_full((batch, merge.num_merged), num)
    return first.scatter_reduce(1, merge.index, positions, 'amin')


def _stack_index(index: torch.Tensor, rows: int,
                 channels: int) -> torch.Tensor:
    """(B, N) -> (rows, N, channels) for a stack of rows / B streams."""
    repeats = rows // index.shape[0]
    return index.repeat(repeats, 1)[..., None].expand(-1, -1, channels)


def grid_merge(merge: GridMerge, x: torch.Tensor) -> torch.Tensor:
    """Mean of each group: (S*B, N, C) -> (S*B, N', C), every stream with
    the same groups."""
    rows, _, channels = x.shape
    sums = x.new_zeros(rows, merge.num_merged, channels)
    sums = sums.scatter_add(1, _stack_index(merge.index, rows, channels), x)
    return sums / merge.size.repeat(rows // merge.index.shape[0], 1, 1)


def grid_unmerge(merge: GridMerge, x: torch.Tensor) -> torch.Tensor:
    """Copy each merged token back to every grid position it holds:
    (S*B, N', C) -> (S*B, N, C)."""
    return x.gather(1, _stack_index(merge.index, x.shape[0], x.shape[-1]))
