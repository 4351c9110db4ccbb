"""Load-time key maps of :class:`FusedMiT`: single-modal ImageNet MiT
checkpoints (NVlabs or mmseg names) expanded to the fused backbone.

Key layout of :class:`FusedMiT` (NVlabs SegFormer names, no modality in the
names; per-modality parameters carry a leading M dimension, those of the
blocks and stage norms a leading S = ``num_streams``, which is M except
behind the auxiliary hub, where S = 2)::

    patch_embed{s}.proj.{weight,bias}      shared conv
    patch_embed{s}.norm.{weight,bias}      (M, C)
    block{s}.{j}.norm1 / norm2             (S, C)
    block{s}.{j}.attn.q / kv / proj        shared Linear (kv rows: K then V)
    block{s}.{j}.attn.sr                   shared conv (stages with sr > 1)
    block{s}.{j}.attn.norm                 (S, C)
    block{s}.{j}.mlp.fc1 / dwconv / fc2    shared
    norm{s}.{weight,bias}                  (S, C)
    fusion_layers.{i}.*                    the i-th fusion layer, e.g.
      TokenExchange: score_predictors.{s-1}.{norm,fc1,fc2,fc3,fc4}
                     ((S, ...) per stream), allocation (stages, S, P, P)
                     for S > 2
      GeminiFusion:  sites.{s-1}.{j}.* (the reference's inner names)
    hub.score_predictors.{s-1}.score_nets.{i}.{0,1}.{weight,bias}
                                           auxiliary hub, M > 2: 0 the
                                           depthwise 3x3 conv (C, 1, 3, 3),
                                           1 the 1x1 conv (1, C, 1, 1);
                                           i < M, the last net unused
"""
import re
from collections import OrderedDict
from typing import Dict, Mapping

import torch

from projects.common.checkpoint import unwrap_state_dict

Tensor = torch.Tensor


def mmseg_mit_to_nvlabs(state: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """mmseg ``MixVisionTransformer`` keys -> NVlabs SegFormer MiT keys (the
    inverse of mmseg's ``tools/model_converters/mit2mmseg.py``)."""
    out = OrderedDict()
    for key, value in state.items():
        match = re.match(r'layers\.(\d+)\.(\d+)\.(.*)', key)
        if match is None:
            raise KeyError(f'Not an mmseg MiT key: {key}')
        stage, part, rest = int(match[1]) + 1, int(match[2]), match[3]
        if part == 0:  # patch embedding
            rest = rest.replace('projection.', 'proj.')
            out[f'patch_embed{stage}.{rest}'] = value
        elif part == 2:  # stage norm
            out[f'norm{stage}.{rest}'] = value
        else:
            block, name = rest.split('.', 1)
            prefix = f'block{stage}.{block}.'
            if name.startswith('attn.attn.in_proj_'):
                kind = name.rsplit('_', 1)[1]  # weight / bias
                dims = value.shape[0] // 3
                out[prefix + f'attn.q.{kind}'] = value[:dims]
                out[prefix + f'attn.kv.{kind}'] = value[dims:]
            elif name.startswith('attn.attn.out_proj.'):
                out[prefix +
                    name.replace('attn.attn.out_proj.', 'attn.proj.')] = value
            elif name.startswith('ffn.layers.'):
                index, kind = name[len('ffn.layers.'):].split('.')
                target = {'0': 'fc1', '1': 'dwconv.dwconv', '4': 'fc2'}[index]
                if target != 'dwconv.dwconv' and kind == 'weight':
                    value = value.flatten(1)  # 1x1 conv -> Linear
                out[prefix + f'mlp.{target}.{kind}'] = value
            else:  # norm1, norm2, attn.sr, attn.norm
                out[prefix + name] = value
    return out


def _expand(value: Tensor, target: Tensor, key: str) -> Tensor:
    """Copy a single-stream tensor into a shared or per-modality one."""
    if value.shape == target.shape:
        return value.clone()
    if target.shape[1:] == value.shape:  # single -> per modality
        return value.unsqueeze(0).repeat(target.shape[0],
                                         *([1] * value.ndim)).clone()
    if value.shape[0] == 1 and value.shape[1:] == target.shape[1:]:
        # shared (1, ...) norm of a saved model -> per modality
        return value.repeat(target.shape[0], *([1] * (value.ndim - 1)))
    raise ValueError(f'{key}: checkpoint shape {tuple(value.shape)} does '
                     f'not fit {tuple(target.shape)}')


def mit_to_fused(checkpoint: Mapping,
                 target: Mapping[str, Tensor],
                 source: str = 'checkpoint') -> Dict[str, Tensor]:
    """ImageNet MiT (NVlabs or mmseg layout) or FusedMiT checkpoint (also
    a whole segmentor's, see :func:`~projects.common.checkpoint.
    unwrap_state_dict`) -> FusedMiT state shaped like ``target``.

    Shared layers take the single weights; every per-modality or per-stream
    tensor (norms, unshared ablation layers) starts as copies of the single
    one, as many as ``target`` has rows (M, or 2 for the blocks and stage
    norms behind the auxiliary hub). The classifier ``head.*`` of NVlabs
    files is dropped. Keys of ``target`` absent from the checkpoint
    (fusion layers, hub score nets) are left out.
    """
    state = unwrap_state_dict(checkpoint, source)
    if any(k.startswith('layers.') for k in state):
        state = mmseg_mit_to_nvlabs(state)
    out = OrderedDict()
    for key, value in state.items():
        if key.startswith('head.'):
            continue
        name = key.replace('mlp.dwconv.dwconv.', 'mlp.dwconv.')
        if name not in target:
            raise KeyError(f'{source}: key {key} has no place in the '
                           f'fused MiT (as {name})')
        out[name] = _expand(value, target[name], key)
    return out
