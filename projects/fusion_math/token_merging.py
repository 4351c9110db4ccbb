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
                 num_protected: int = 1) -> torch.Tensor:
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
    if criteria.tau_info and attn is not None:
        inverse = 1 / received_attention(attn)
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
                 reduce: str = 'sum') -> torch.Tensor:
    """Merge dimension -2 of ``x`` (B, ..., T, C) -> (B, ..., T', C):
    each output row is the ``reduce`` (``'sum'``, ``'amax'``, ...) of the
    input rows merged into it."""
    if x.shape[-2] != matching.num_tokens:
        raise ValueError(f'the matching is for {matching.num_tokens} tokens, '
                         f'got a tensor of shape {tuple(x.shape)}')
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
                  attn: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Pooling weights (B, T, 1) of the tokens (detached): ``'size'``: s;
    ``'attention_size'``: received attention x s / max(s); ``'mean'``: 1
    (``'max'`` has none)."""
    if pooling not in POOLING or pooling == 'max':
        raise ValueError(f'no token weights for pooling {pooling!r}; '
                         f'weighted poolings: {POOLING[:2] + POOLING[3:]}')
    size = size.detach()
    if pooling == 'size':
        return size
    if pooling == 'mean':
        return torch.ones_like(size)
    if attn is None:
        raise ValueError("pooling 'attention_size' needs the attention map")
    received = received_attention(attn.detach())[..., None]
    return received * size / size.amax(dim=1, keepdim=True)


def pool_tokens(
        matching: Matching,
        x: torch.Tensor,
        size: torch.Tensor,
        pooling: str = 'attention_size',
        attn: Optional[torch.Tensor] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Merged tokens (B, T', C) and sizes (B, T', 1): a merged token is
    the weighted mean of its members (:func:`token_weights`) or, for
    ``'max'``, their element-wise maximum; sizes add up."""
    new_size = merge_tokens(matching, size.detach())
    if pooling == 'max':
        return merge_tokens(matching, x, 'amax'), new_size
    weights = token_weights(pooling, size, attn)
    pooled = merge_tokens(matching, x * weights) / merge_tokens(
        matching, weights)
    return pooled, new_size


def merge_attention(matching: Matching,
                    attn: torch.Tensor,
                    size: torch.Tensor,
                    pooling: str = 'attention_size') -> torch.Tensor:
    """Merge an attention map (B, H, T, T) -> (B, H, T', T') with its
    tokens: the key columns of a group add up (its probability mass), the
    query rows are pooled as :func:`pool_tokens` pools the tokens, so the
    rows still sum to 1 (not for ``'max'``, the row-wise maximum)."""
    columns = merge_tokens(matching, attn[..., None])[..., 0]
    if pooling == 'max':
        return merge_tokens(matching, columns, 'amax')
    weights = token_weights(pooling, size, attn)[:, None]  # (B, 1, T, 1)
    return merge_tokens(matching, columns * weights) / merge_tokens(
        matching, weights)


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


def proportional_attention_bias(size: torch.Tensor) -> torch.Tensor:
    """log(s) of every key, to add to the attention logits (B, H, T_q, T):
    a token standing for s patches gets the attention s copies would get.
    ``size`` (B, T, 1) -> (B, 1, 1, T)."""
    return size.log()[:, None, None, :, 0]
