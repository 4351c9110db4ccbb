"""GeminiFusion (ICML'24): pixel-wise intra/inter-modal attention.

At every fusion site each modality's token at position p attends to
exactly two keys, both derived from itself:

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
per-head 2-way softmax) over batch and pixels at once
(:func:`gemini_attention`). :class:`GeminiFusionModule` keeps
``nn.MultiheadAttention``'s parameter layout and the reference names
(``cross_attn_0_to_1``, ``cross_attn_1_to_0``, ``relation_judger.0.fc1``,
``relation_judger.0.fc2``, ``k_noise``, ``v_noise``).

The module fuses exactly two streams. With M > 2 modalities (the DeLiVER
branch, e.g. RGB, depth, event, LiDAR) a backbone keeps two streams, RGB
and one auxiliary stream aggregated from the M - 1 auxiliary modalities at
every stage by a *hub* (:class:`HubScorePredictor`, :func:`hub_scores`,
:func:`hub_aggregate`, :func:`hub_update`).
"""
from typing import List, Tuple

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


class GeminiFusionModule(nn.Module):
    """GeminiFusion module of one fusion site, for two modalities.

    Args:
        channels (int): C.
        num_heads (int): Heads of the fusion attention (reference: 8 at
            every stage). C must be divisible by it.
        num_modalities (int): Streams to fuse, must be 2. More
            modalities are first reduced to two streams (RGB + one
            auxiliary stream) by a DeLiVER-style hub.

    Input (2*B, N, C), modality m at rows m*B..(m+1)*B (a modality stack)
    -> (2*B, N, C), per modality z = s + f.

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
                f'GeminiFusion fuses exactly 2 streams, got '
                f'{num_modalities}: for more modalities give the backbone a '
                "hub (hub=dict(type='AuxiliaryHub')), which aggregates the "
                'auxiliary modalities into one stream next to RGB.')
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


def hub_scores(aux: torch.Tensor, hw: Tuple[int, int], dw_weight: torch.Tensor,
               dw_bias: torch.Tensor, pw_weight: torch.Tensor,
               pw_bias: torch.Tensor) -> torch.Tensor:
    """Score maps of the auxiliary modalities, s_a = sigmoid(Conv1x1(
    DWConv3x3(x_a))), one score net per auxiliary modality a.

    All A nets run as one grouped convolution over the auxiliaries stacked
    along channels.

    Args:
        aux (Tensor): Auxiliary tokens (A, B, N, C), N = H * W row-major.
        hw (tuple): (H, W).
        dw_weight (Tensor): (A, C, 1, 3, 3) depthwise 3x3 kernels.
        dw_bias (Tensor): (A, C).
        pw_weight (Tensor): (A, 1, C, 1, 1) 1x1 kernels (C -> 1).
        pw_bias (Tensor): (A, 1).

    Returns:
        Tensor: (A, B, N, 1) scores in (0, 1), one per token.
    """
    a, b, n, c = aux.shape
    x = aux.permute(1, 0, 3, 2).reshape(b, a * c, *hw)
    x = F.conv2d(
        x, dw_weight.flatten(0, 1), dw_bias.flatten(), padding=1, groups=a * c)
    x = F.conv2d(x, pw_weight.flatten(0, 1), pw_bias.flatten(), groups=a)
    return x.sigmoid().reshape(b, a, n).transpose(0, 1).unsqueeze(-1)


def hub_aggregate(aux: torch.Tensor, scores: torch.Tensor) -> \
        Tuple[torch.Tensor, torch.Tensor]:
    """Scale every auxiliary modality by its scores, x_a <- x_a * s_a +
    x_a, and take the element-wise max over the auxiliaries.

    aux (A, B, N, C), scores (A, B, N, 1) -> (scaled (A, B, N, C), auxiliary
    stream (B, N, C)).
    """
    scaled = aux * scores + aux
    return scaled, scaled.amax(dim=0)


def hub_update(scaled: torch.Tensor, stream: torch.Tensor) -> torch.Tensor:
    """Tokens of the auxiliary modalities entering the next stage: each
    modality's scaled pre-block tokens plus the auxiliary stream's stage
    output (after the stage norm).

    scaled (A, B, N, C), stream (B, N, C) -> (A, B, N, C).
    """
    return scaled + stream.unsqueeze(0)


class HubScorePredictor(nn.Module):
    """Score nets of one stage of the DeLiVER-style hub (the reference's
    ``PredictorConv``, ``extra_score_predictor.{stage}``).

    ``score_nets.{i}`` = Sequential(Conv2d(C, C, 3, padding=1, groups=C),
    Conv2d(C, 1, 1), Sigmoid), both convs with bias; net i scores auxiliary
    modality i (i = 0 is the first modality after RGB). As in the reference,
    which builds one net per modality but only runs the first M - 1, there
    are ``num_modalities`` nets and the last one is unused: it is kept so
    that the released DeLiVER checkpoints load key for key, and frozen
    (``requires_grad=False``) so that DDP and the optimiser ignore it.

    Args:
        num_modalities (int): M (RGB + M - 1 auxiliaries), at least 3.
        channels (int): C of the stage.

    Input: auxiliary tokens (M-1, B, N, C) and (H, W) -> (scaled (M-1, B,
    N, C), auxiliary stream (B, N, C)), see :func:`hub_aggregate`.
    """

    def __init__(self, num_modalities: int, channels: int) -> None:
        super().__init__()
        if num_modalities < 3:
            raise ValueError(
                'the hub aggregates the auxiliaries of >= 3 '
                f'modalities, got num_modalities={num_modalities}')
        self.num_modalities = num_modalities
        self.channels = channels
        self.score_nets = nn.ModuleList([
            nn.Sequential(
                nn.Conv2d(channels, channels, 3, 1, 1, groups=channels),
                nn.Conv2d(channels, 1, 1), nn.Sigmoid())
            for _ in range(num_modalities)
        ])
        self.score_nets[-1].requires_grad_(False)
        self.reset_parameters()

    @property
    def active_nets(self) -> List[nn.Sequential]:
        """The M - 1 nets that score the auxiliaries."""
        return list(self.score_nets)[:self.num_modalities - 1]

    def reset_parameters(self) -> None:
        """The reference's effective initialisation: N(0, 2 / fan_out) with
        fan_out = k * k * out_channels (its segmentor re-initialises every
        conv without dividing by groups), zero bias."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[
                    1] * module.out_channels
                nn.init.normal_(module.weight, 0, (2.0 / fan_out)**0.5)
                nn.init.zeros_(module.bias)

    def scores(self, aux: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        """(M-1, B, N, C) -> (M-1, B, N, 1), see :func:`hub_scores`."""
        nets = self.active_nets
        if aux.shape[0] != len(nets):
            raise ValueError(f'{len(nets)} auxiliary modalities expected, got '
                             f'{aux.shape[0]}')
        return hub_scores(aux, hw,
                          torch.stack([net[0].weight for net in nets]),
                          torch.stack([net[0].bias for net in nets]),
                          torch.stack([net[1].weight for net in nets]),
                          torch.stack([net[1].bias for net in nets]))

    def forward(self, aux: torch.Tensor, hw: Tuple[int, int]) -> \
            Tuple[torch.Tensor, torch.Tensor]:
        return hub_aggregate(aux, self.scores(aux, hw))

    def extra_repr(self) -> str:
        return f'{self.channels}, modalities={self.num_modalities}'
