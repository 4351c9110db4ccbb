"""State-dict conversion into TokenFusion models.

Key layout of :class:`TokenFusionMiT` (NVlabs SegFormer names, no modality
in the names; per-modality parameters carry a leading M dimension, those of
the blocks and stage norms a leading S = ``num_streams``, which is M except
for the GeminiFusion hub, where S = 2)::

    patch_embed{s}.proj.{weight,bias}      shared conv
    patch_embed{s}.norm.{weight,bias}      (M, C)
    block{s}.{j}.norm1 / norm2             (S, C)
    block{s}.{j}.attn.q / kv / proj        shared Linear (kv rows: K then V)
    block{s}.{j}.attn.sr                   shared conv (stages with sr > 1)
    block{s}.{j}.attn.norm                 (S, C)
    block{s}.{j}.mlp.fc1 / dwconv / fc2    shared
    norm{s}.{weight,bias}                  (S, C)
    score_predictor.{s-1}.{norm,fc1,fc2,fc3,fc4}   (M, ...) per modality
    exchange_allocation                    (stages, M, P, P), M > 2 only
                                           (token fusion modes)
    block{s}.{j}.attn.gemini.*             GeminiFusion (reference names)
    extra_score_predictor.{s-1}.score_nets.{i}.{0,1}.{weight,bias}
                                           GeminiFusion hub, M > 2: 0 the
                                           depthwise 3x3 conv (C, 1, 3, 3),
                                           1 the 1x1 conv (1, C, 1, 1);
                                           i < M, the last net unused
"""
import re
from collections import OrderedDict
from typing import Dict, Mapping

import torch

Tensor = torch.Tensor


def backbone_weights(state: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """The backbone part of a checkpoint's state dict: the ``module.``
    prefix of DataParallel files dropped, and of a whole segmentor (keys
    ``backbone.*`` beside ``decode_head.*``) only ``backbone.*``, without
    the prefix. Other states are returned as they are."""
    if state and all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    if any(k.startswith('backbone.') for k in state):
        return {
            k[len('backbone.'):]: v
            for k, v in state.items() if k.startswith('backbone.')
        }
    return dict(state)


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


def mit_to_tokenfusion(state: Mapping[str, Tensor],
                       target: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """ImageNet MiT (NVlabs or mmseg layout) or TokenFusionMiT state (also
    inside a whole segmentor checkpoint, see :func:`backbone_weights`) ->
    TokenFusionMiT state shaped like ``target``.

    Shared layers take the single weights; every per-modality or per-stream
    tensor (norms, unshared ablation layers) starts as copies of the single
    one, as many as ``target`` has rows (M, or 2 for the blocks and stage
    norms of the GeminiFusion hub). The classifier ``head.*`` of NVlabs
    files is dropped. Keys of ``target`` absent from ``state`` (score
    predictors, GeminiFusion modules, hub score nets) are left out.
    """
    state = backbone_weights(state)
    if any(k.startswith('layers.') for k in state):
        state = mmseg_mit_to_nvlabs(state)
    out = OrderedDict()
    for key, value in state.items():
        if key.startswith('head.'):
            continue
        name = key.replace('mlp.dwconv.dwconv.', 'mlp.dwconv.')
        if name not in target:
            raise KeyError(f'Checkpoint key {key} has no place in the '
                           f'TokenFusion backbone (as {name})')
        out[name] = _expand(value, target[name], key)
    return out
