"""An independent forward of DeiT with MCTF, written from the method's
description (the reference's ``Block_DEIT`` / ``mctf`` / ``merge_wavg``
semantics), on a timm-named DeiT state dict. Each image is merged on its
own with explicit groups of token indices (lists), not with the library's
gather / scatter functions, so the library is checked against a second,
plain formulation.

Merging (one image, tokens x (T, C), attention (H, T, T), sizes (T,)):
A = even positions, B = odd; W = product of the criteria, row 0 -inf;
step 1 merges the r // 2 (unidirectional: r) A tokens with the best row
maxima into their B partners; step 2 merges the r - r // 2 B tokens with
the best maxima over the kept A columns into them; the output is the kept
A groups in index order, then the kept B groups in descending step-2
score (unidirectional: all B groups in index order). A group's token is
the weighted mean of its members' (weights: size, received attention x
size / max size, or 1), or their maximum.
"""
import math
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F

EPS = 1e-6  # DeiT's LayerNorm


def layer_norm(x, sd, name):
    return F.layer_norm(x, x.shape[-1:], sd[f'{name}.weight'],
                        sd[f'{name}.bias'], EPS)


def linear(x, sd, name):
    return F.linear(x, sd[f'{name}.weight'], sd[f'{name}.bias'])


def groups_of(x, attn, size, r, taus, bidirectional) -> List[List[int]]:
    """The merge groups (lists of input indices) of one image."""
    t = x.shape[0]
    a_pos = list(range(0, t, 2))
    b_pos = list(range(1, t, 2))
    tau_sim, tau_info, tau_size = taus
    unit = x / x.norm(dim=-1, keepdim=True)
    w = x.new_ones(len(a_pos), len(b_pos))
    if tau_sim:
        w *= ((unit[a_pos] @ unit[b_pos].T + 1) / 2)**(1 / tau_sim)
    if tau_info and attn is not None:
        received = attn.mean(dim=(0, 1))
        u = (1 / received) / (1 / received).max()
        w *= (u[a_pos][:, None] * u[b_pos][None])**(1 / tau_info)
    if tau_size and size is not None:
        v = (1 / size) / (1 / size).max()
        w *= (v[a_pos][:, None] * v[b_pos][None])**(1 / tau_size)
    w[0] = -math.inf
    r1 = r // 2 if bidirectional else r
    best = [(w[i].max().item(), i) for i in range(len(a_pos))]
    ranked = [i for _, i in sorted(best, key=lambda e: (-e[0], e[1]))]
    merged, kept = ranked[:r1], sorted(ranked[r1:])
    b_groups = [[b_pos[j]] for j in range(len(b_pos))]
    for i in merged:
        b_groups[int(w[i].argmax())].append(a_pos[i])
    a_groups = [[a_pos[i]] for i in kept]
    if not bidirectional:
        return a_groups + b_groups
    w2 = w[kept]  # kept A rows x B columns
    best2 = [(w2[:, j].max().item(), j) for j in range(len(b_pos))]
    ranked2 = [j for _, j in sorted(best2, key=lambda e: (-e[0], e[1]))]
    for j in ranked2[:r - r1]:
        a_groups[int(w2[:, j].argmax())].extend(b_groups[j])
    return a_groups + [b_groups[j] for j in ranked2[r - r1:]]


def group_weights(pooling, size, attn):
    if pooling == 'size':
        return size
    if pooling == 'mean':
        return torch.ones_like(size)
    return attn.mean(dim=(0, 1)) * size / size.max()


def pool(values, groups, weights, pooling, dim=0):
    """Pool dimension ``dim`` of ``values`` over the groups."""
    out = []
    for g in groups:
        members = values.index_select(dim, torch.tensor(g))
        if pooling == 'max':
            out.append(members.amax(dim))
            continue
        wg = weights[g]
        shape = [1] * values.dim()
        shape[dim] = len(g)
        out.append((members * wg.view(shape)).sum(dim) / wg.sum())
    return torch.stack(out, dim)


def attention(sd, p, xn, heads, size):
    t, c = xn.shape
    qkv = linear(xn, sd, f'{p}.attn.qkv').view(t, 3, heads, c // heads)
    q, k, v = qkv.permute(1, 2, 0, 3)
    logits = (q @ k.transpose(1, 2)) * (c // heads)**-0.5
    if size is not None:
        logits = logits + size.log()[None, None]
    return logits.softmax(-1), k, v


def mix(sd, p, attn, v):
    t = attn.shape[-1]
    return linear((attn @ v).transpose(0, 1).reshape(t, -1), sd,
                  f'{p}.attn.proj')


def mlp(sd, p, x):
    h = F.gelu(linear(layer_norm(x, sd, f'{p}.norm2'), sd, f'{p}.mlp.fc1'))
    return x + linear(h, sd, f'{p}.mlp.fc2')


def merge_step(x, attn, size, r, cfg, grouping_metric=None):
    """Merge one image; returns (x, new size, groups, weights)."""
    metric = x if grouping_metric is None else grouping_metric
    groups = groups_of(metric, attn, cfg['tracked_size'], r, cfg['taus'],
                       cfg['bidirectional'])
    weights = group_weights(cfg['pooling'], size, attn)
    new_size = torch.stack([size[g].sum() for g in groups])
    return pool(x, groups, weights, cfg['pooling']), new_size, groups, weights


def reference_forward(sd: Dict[str, torch.Tensor],
                      images: torch.Tensor,
                      r_per_layer: List[int],
                      heads: int,
                      mode: int = 1,
                      taus=(1., 20., 40.),
                      bidirectional: bool = True,
                      pooling: str = 'attention_size',
                      prop_attn: bool = True,
                      tome: bool = False,
                      counts: Optional[list] = None) -> torch.Tensor:
    """Logits (B, classes) of DeiT (timm names in ``sd``) with MCTF: mode
    0 (merge after the block), 1 (one step ahead) or 2 (precise); ``tome``:
    merge between attention and MLP on the keys. ``r_per_layer``: tokens
    removed per layer (already through the safeguards). ``counts`` (a
    list) receives the token count after every layer of the first
    image."""
    patch = sd['patch_embed.proj.weight']
    tokens = F.conv2d(
        images, patch, sd['patch_embed.proj.bias'],
        stride=patch.shape[-1]).flatten(2).transpose(1, 2)
    logits = []
    for n, t0 in enumerate(tokens):
        x = torch.cat([sd['cls_token'][0], t0]) + sd['pos_embed'][0]
        size = x.new_ones(x.shape[0])
        merged_yet = False
        cfg = dict(taus=taus, bidirectional=bidirectional, pooling=pooling)
        if n == 0 and counts is not None:
            counts.append(x.shape[0])
        for layer, r in enumerate(r_per_layer):
            p = f'blocks.{layer}'
            bias = size if (prop_attn and merged_yet) else None
            cfg['tracked_size'] = size if merged_yet else None
            xn = layer_norm(x, sd, f'{p}.norm1')
            if r and mode == 1 and not tome:
                attn, _, _ = attention(sd, p, xn, heads, bias)
                x, new_size, groups, weights = merge_step(
                    x, attn, size, r, cfg)
                # key columns summed, query rows pooled like the tokens
                attn = torch.stack([attn[..., g].sum(-1) for g in groups],
                                   dim=-1)
                attn = pool(attn, groups, weights, pooling, dim=1)
                size, merged_yet = new_size, True
                _, _, v = attention(sd, p, layer_norm(x, sd, f'{p}.norm1'),
                                    heads, None)
                x = mlp(sd, p, x + mix(sd, p, attn, v))
            elif r and mode == 2 and not tome:
                attn, _, _ = attention(sd, p, xn, heads, bias)
                x, size, _, _ = merge_step(x, attn, size, r, cfg)
                merged_yet = True
                bias = size if prop_attn else None
                attn, _, v = attention(sd, p, layer_norm(x, sd, f'{p}.norm1'),
                                       heads, bias)
                x = mlp(sd, p, x + mix(sd, p, attn, v))
            else:
                attn, k, v = attention(sd, p, xn, heads, bias)
                x = x + mix(sd, p, attn, v)
                if r and tome:
                    x, size, _, _ = merge_step(x, attn, size, r, cfg,
                                               k.mean(0))
                    merged_yet = True
                x = mlp(sd, p, x)
                if r and mode == 0 and not tome:
                    x, size, _, _ = merge_step(x, attn, size, r, cfg)
                    merged_yet = True
            if n == 0 and counts is not None:
                counts.append(x.shape[0])
        x = layer_norm(x, sd, 'norm')
        logits.append(linear(x[0], sd, 'head'))
    return torch.stack(logits)
