"""GeminiFusion (ICML'24): pixel-wise intra/inter-modal attention.

At every fusion site (every MiT block, on the efficient-attention output
before the shared output projection) each modality's token at position p
attends to exactly two keys, both derived from itself:

* key 1 = s + n_k[m] ("noised self"), value 1 = s + n_v[m];
* key 2 = s * r ("relation-modulated self"), value 2 = t, the *other*
  modality's token at the same position,

with r = softmax_C(fc2(GELU(fc1([s; t])))) from a relation discriminator
shared by both directions, n_k / n_v learned per-layer, per-direction
vectors (``nn.Embedding(2, C)``, identical at train and eval time) and an
8-head ``nn.MultiheadAttention`` per direction (query s, query length 1,
key length 2). The fused token is s + MHA(...).

The reference code loops over the batch and calls ``nn.MultiheadAttention``
with the pixels as its batch axis; here the same function is computed in a
closed vectorised form (``F.linear`` with the packed in-projection and a
per-head 2-way softmax) over batch and pixels at once. The parameters keep
``nn.MultiheadAttention``'s layout and the reference names
(``cross_attn_0_to_1``, ``cross_attn_1_to_0``, ``relation_judger.0.fc1``,
``relation_judger.0.fc2``, ``k_noise``, ``v_noise``).
"""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


def relation_scores(s: torch.Tensor, t: torch.Tensor, fc1_weight: torch.Tensor,
                    fc1_bias: torch.Tensor, fc2_weight: torch.Tensor,
                    fc2_bias: torch.Tensor) -> torch.Tensor:
    """Relation discriminator: softmax over channels of
    fc2(GELU(fc1([s; t]))). s, t: (..., C) -> r: (..., C), sum_C r = 1."""
    hidden = F.gelu(F.linear(torch.cat([s, t], dim=-1), fc1_weight, fc1_bias))
    return F.linear(hidden, fc2_weight, fc2_bias).softmax(dim=-1)


def gemini_attention(s: torch.Tensor, t: torch.Tensor, r: torch.Tensor,
                     k_noise: torch.Tensor, v_noise: torch.Tensor,
                     in_proj_weight: torch.Tensor, in_proj_bias: torch.Tensor,
                     out_proj_weight: torch.Tensor,
                     out_proj_bias: torch.Tensor,
                     num_heads: int) -> torch.Tensor:
    """One direction (self s <- other t) of GeminiFusion, closed form.

    Equals ``nn.MultiheadAttention`` (packed ``in_proj_weight`` (3C, C))
    called with query ``s`` (length 1) and keys ``[s + k_noise, s * r]`` /
    values ``[s + v_noise, t]`` (length 2) for every position, without the
    residual. s, t, r: (..., C); k_noise, v_noise: (C, ) -> (..., C).
    """
    c = s.shape[-1]
    d = c // num_heads
    w_q, w_k, w_v = in_proj_weight.chunk(3)
    b_q, b_k, b_v = in_proj_bias.chunk(3)
    heads = s.shape[:-1] + (num_heads, d)
    q = F.linear(s, w_q, b_q).reshape(heads)
    k1 = F.linear(s + k_noise, w_k, b_k).reshape(heads)
    k2 = F.linear(s * r, w_k, b_k).reshape(heads)
    v1 = F.linear(s + v_noise, w_v, b_v).reshape(heads)
    v2 = F.linear(t, w_v, b_v).reshape(heads)
    # per head: 2-way softmax over the keys, (..., heads, 2)
    logits = torch.stack([(q * k1).sum(-1), (q * k2).sum(-1)], dim=-1)
    attn = (logits * d**-0.5).softmax(dim=-1).unsqueeze(-1)
    out = attn[..., 0, :] * v1 + attn[..., 1, :] * v2
    return F.linear(out.flatten(-2), out_proj_weight, out_proj_bias)


class RelationJudger(nn.Module):
    """Relation discriminator MLP: Linear(2C, C) -> GELU -> Linear(C, C),
    followed by a softmax over channels (see :func:`relation_scores`)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2 * channels, channels)
        self.fc2 = nn.Linear(channels, channels)

    def forward(self, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return relation_scores(s, t, self.fc1.weight, self.fc1.bias,
                               self.fc2.weight, self.fc2.bias)


class GeminiFusion(nn.Module):
    """GeminiFusion module of one fusion site, for two modalities.

    Args:
        channels (int): C.
        num_heads (int): Heads of the fusion attention (reference: 8 at
            every stage). C must be divisible by it.
        num_modalities (int): Must be 2. More modalities need the
            DeLiVER-style hub (CMNeXt-like aggregation of the auxiliary
            modalities into one stream), which is not implemented.

    Input (2*B, N, C), modality m at rows m*B..(m+1)*B (the modality stack
    of :class:`TokenFusionMiT`) -> (2*B, N, C), per modality z = s + f.

    Parameters: ``cross_attn_0_to_1`` (direction 0 <- 1, i.e. modality 0
    attends to modality 1) and ``cross_attn_1_to_0`` (1 <- 0), each an
    ``nn.MultiheadAttention(C, num_heads)`` used only as a container of
    ``in_proj_weight`` (3C, C), ``in_proj_bias``, ``out_proj.weight``,
    ``out_proj.bias``; ``relation_judger.0.fc1`` / ``.fc2`` (shared by both
    directions, input [self; other]); ``k_noise`` / ``v_noise``
    ``nn.Embedding(2, C)`` (row m for direction m).

    Initialisation as the reference: the Linear layers (relation fc1 / fc2,
    MHA ``out_proj``) trunc_normal(std 0.02) with zero bias,
    ``in_proj_weight`` xavier_uniform with zero ``in_proj_bias``, the noise
    embeddings N(0, 1) (PyTorch's default for ``nn.Embedding``).
    """

    def __init__(self,
                 channels: int,
                 num_heads: int = 8,
                 num_modalities: int = 2) -> None:
        super().__init__()
        if num_modalities != 2:
            raise NotImplementedError(
                f'GeminiFusion is implemented for exactly 2 modalities, got '
                f'{num_modalities}: more need the DeLiVER-style hub (one RGB '
                'stream plus one auxiliary stream aggregated from the other '
                'modalities, GeminiFusion DeLiVER branch), a later step.')
        if channels % num_heads:
            raise ValueError(f'channels {channels} are not divisible by '
                             f'num_heads {num_heads}')
        self.channels = channels
        self.num_heads = num_heads
        self.num_modalities = num_modalities
        self.cross_attn_0_to_1 = nn.MultiheadAttention(channels, num_heads)
        self.cross_attn_1_to_0 = nn.MultiheadAttention(channels, num_heads)
        self.relation_judger = nn.Sequential(RelationJudger(channels))
        self.k_noise = nn.Embedding(2, channels)
        self.v_noise = nn.Embedding(2, channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.MultiheadAttention):
                nn.init.xavier_uniform_(module.in_proj_weight)
                nn.init.zeros_(module.in_proj_bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight)

    @property
    def directions(self) -> Tuple[nn.MultiheadAttention, ...]:
        """Attention of direction m (modality m <- the other)."""
        return self.cross_attn_0_to_1, self.cross_attn_1_to_0

    def relation(self, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """r of self s w.r.t. other t, (..., C)."""
        return self.relation_judger[0](s, t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.reshape(2, -1, *x.shape[1:])
        # relation of both directions in one call: inputs [y_m; y_(1-m)]
        r = self.relation(y, y.flip(0))
        out = []
        for m, mha in enumerate(self.directions):
            s, t = y[m], y[1 - m]
            f = gemini_attention(s, t, r[m], self.k_noise.weight[m],
                                 self.v_noise.weight[m], mha.in_proj_weight,
                                 mha.in_proj_bias, mha.out_proj.weight,
                                 mha.out_proj.bias, self.num_heads)
            out.append(s + f)
        return torch.cat(out).reshape(x.shape)

    def extra_repr(self) -> str:
        return f'{self.channels}, heads={self.num_heads}'
