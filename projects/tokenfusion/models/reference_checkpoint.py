"""Official TokenFusion (yikaiw/TokenFusion) segmentation checkpoints ->
:class:`TokenFusionEncoderDecoder` state dicts.

The reference ``WeTr`` model is saved as ``{'segmenter': state_dict,
'epoch_start': ..., 'best_val': ...}`` with the ``nn.DataParallel`` prefix
``module.`` on every key. Its names differ from ours in four ways:

* ``ModuleParallel`` wraps every shared conv / linear layer, adding a
  ``.module.`` segment (``encoder.block1.0.attn.q.module.weight``);
* ``LayerNormParallel`` holds one ``nn.LayerNorm`` per modality as
  ``ln_0, ln_1, ...``; we keep one (M, C) ``weight`` / ``bias``;
* ``PredictorLG`` holds one ``nn.Sequential`` per modality in
  ``score_nets.{m}`` (LayerNorm at index 0, Linear layers at 1, 3, 5, 7);
  we keep ``norm, fc1 .. fc4`` with a leading M dimension;
* Mix-FFN's depthwise conv is ``mlp.dwconv.dwconv``; ours is ``mlp.dwconv``.

The encoder becomes ``backbone.``, the SegFormer MLP head ``decode_head.``
(its names ``linear_c{i}.proj``, ``linear_fuse.{conv,bn}``, ``linear_pred``
are kept) and the ensemble weights ``alpha`` stay ``alpha``.
"""
import re
from collections import Counter, OrderedDict
from typing import Dict, List, Mapping, Optional

import torch

from .tokenfusion_mit import MIT_ARCHS

Tensor = torch.Tensor

# encoder.<name>.module.<param>: shared (ModuleParallel) conv / linear layers
_SHARED = re.compile(r'encoder\.(patch_embed\d+\.proj|block\d+\.\d+\.'
                     r'(?:attn\.(?:q|kv|proj|sr)|mlp\.(?:fc1|fc2)))'
                     r'\.module\.(weight|bias)')
# encoder.<name>.ln_<m>.<param>: per-modality LayerNorms (LayerNormParallel)
_NORM = re.compile(r'encoder\.(patch_embed\d+\.norm|norm\d+|block\d+\.\d+\.'
                   r'(?:norm1|norm2|attn\.norm))\.ln_(\d+)\.(weight|bias)')
_DWCONV = re.compile(r'encoder\.(block\d+\.\d+\.mlp)\.dwconv\.dwconv\.'
                     r'(weight|bias)')
_PREDICTOR = re.compile(r'encoder\.score_predictor\.(\d+)\.score_nets\.'
                        r'(\d+)\.(\d+)\.(weight|bias)')
_DECODER = re.compile(r'decoder\.(linear_c\d+\.proj\.(?:weight|bias)|'
                      r'linear_fuse\.conv\.weight|linear_fuse\.bn\.'
                      r'(?:weight|bias|running_mean|running_var|'
                      r'num_batches_tracked)|linear_pred\.(?:weight|bias))')
# nn.Sequential index in PredictorLG.score_nets[m] -> our layer name
_PREDICTOR_LAYERS = {
    '0': 'norm',
    '1': 'fc1',
    '3': 'fc2',
    '5': 'fc3',
    '7': 'fc4'
}


def reference_state_dict(checkpoint: Mapping) -> Dict[str, Tensor]:
    """The reference model's weights without the DataParallel prefix:
    ``checkpoint['segmenter']`` of a saved file, or a bare state dict."""
    state = checkpoint.get('segmenter', checkpoint)
    if not isinstance(state, Mapping) or not all(
            isinstance(v, Tensor) for v in state.values()):
        raise TypeError('Not a TokenFusion checkpoint: expected a dict with '
                        "'segmenter' or a state dict of tensors")
    return OrderedDict(
        (k[len('module.'):] if k.startswith('module.') else k, v)
        for k, v in state.items())


def convert_tokenfusion_reference(checkpoint: Mapping) -> OrderedDict:
    """Convert an official TokenFusion segmentation checkpoint.

    Args:
        checkpoint (Mapping): The loaded file (weights under
            ``'segmenter'``) or its state dict, keys with or without the
            ``module.`` prefix.

    Returns:
        OrderedDict: The state dict of the matching
        :class:`TokenFusionEncoderDecoder`; per-modality tensors are stacked
        over the modalities in index order (0 = RGB, 1 = depth). The number
        of modalities M is that of the ``ln_{m}`` indices.
        :func:`describe_tokenfusion_state` summarises it.

    Raises:
        KeyError: Keys that match no rule (all of them are listed).
        ValueError: Per-modality tensors whose modality indices are not
            0..M-1 with the same M everywhere, or that do not stack.
    """
    state = reference_state_dict(checkpoint)
    out: Dict[str, object] = OrderedDict()
    unmapped: List[str] = []
    for key, value in state.items():
        match = _SHARED.fullmatch(key)
        if match:
            out[f'backbone.{match[1]}.{match[2]}'] = value
            continue
        match = _DWCONV.fullmatch(key)
        if match:
            out[f'backbone.{match[1]}.dwconv.{match[2]}'] = value
            continue
        match = _NORM.fullmatch(key)
        if match:
            target = f'backbone.{match[1]}.{match[3]}'
            out.setdefault(target, {})[int(match[2])] = value
            continue
        match = _PREDICTOR.fullmatch(key)
        if match and match[3] in _PREDICTOR_LAYERS:
            layer = _PREDICTOR_LAYERS[match[3]]
            target = f'backbone.score_predictor.{match[1]}.{layer}.{match[4]}'
            out.setdefault(target, {})[int(match[2])] = value
            continue
        match = _DECODER.fullmatch(key)
        if match:
            out[f'decode_head.{match[1]}'] = value
            continue
        if key == 'alpha':
            out[key] = value
            continue
        unmapped.append(key)
    if unmapped:
        raise KeyError(f'{len(unmapped)} checkpoint keys match no '
                       f'TokenFusion reference name: {unmapped}')

    per_modality = {k: v for k, v in out.items() if isinstance(v, dict)}
    if not per_modality:
        raise ValueError('No per-modality LayerNorm (ln_<m>) keys: not a '
                         'TokenFusion checkpoint')
    # M: the index set (ln_<m>, score_nets.<m>) shared by most tensors
    indices = {k: tuple(sorted(v)) for k, v in per_modality.items()}
    common = Counter(indices.values()).most_common(1)[0][0]
    odd = {k: list(v) for k, v in indices.items() if v != common}
    if odd:
        raise ValueError(
            f'Inconsistent modalities: most per-modality tensors '
            f'(ln_<m> / score_nets.<m>) have the indices {list(common)}, '
            f'but {odd}')
    num_modalities = len(common)
    if common != tuple(range(num_modalities)):
        raise ValueError(f'Modality indices {list(common)} are not '
                         f'0..{num_modalities - 1}')
    for key, values in per_modality.items():
        shapes = {tuple(v.shape) for v in values.values()}
        if len(shapes) > 1:
            raise ValueError(f'{key}: per-modality shapes differ: {shapes}')
        out[key] = torch.stack([values[m] for m in range(num_modalities)])
    alpha = out.get('alpha')
    if alpha is not None and tuple(alpha.shape) != (num_modalities, ):
        raise ValueError(f'alpha has shape {tuple(alpha.shape)}, expected '
                         f'({num_modalities},)')
    return out


def _match_arch(embed_dims: int, depths: List[int]) -> Optional[str]:
    for name, arch in MIT_ARCHS.items():
        if arch['embed_dims'] == embed_dims and list(
                arch['num_layers']) == depths:
            return name
    return None


def describe_tokenfusion_state(state: Mapping[str, Tensor]) -> dict:
    """What a converted TokenFusion state dict (``backbone.*`` keys, as
    :func:`convert_tokenfusion_reference` returns) holds: modalities,
    per-stage channels / depths / sr ratios, the MiT preset it matches,
    stages with score predictors, head channels, classes and ensemble
    weights. Plain Python values (for printing and checkpoint meta)."""
    backbone = {
        k[len('backbone.'):]: v
        for k, v in state.items() if k.startswith('backbone.')
    }
    stages = sorted(
        int(m[1]) for m in map(
            re.compile(r'patch_embed(\d+)\.proj\.weight').fullmatch, backbone)
        if m)
    dims, depths, sr_ratios = [], [], []
    for s in stages:
        dims.append(backbone[f'patch_embed{s}.proj.weight'].shape[0])
        depths.append(
            len({
                k.split('.')[1]
                for k in backbone if k.startswith(f'block{s}.')
            }))
        sr = backbone.get(f'block{s}.0.attn.sr.weight')
        sr_ratios.append(1 if sr is None else sr.shape[-1])
    info = dict(
        num_modalities=backbone[f'norm{stages[-1]}.weight'].shape[0],
        in_channels=backbone['patch_embed1.proj.weight'].shape[1],
        embed_dims=dims,
        depths=depths,
        sr_ratios=sr_ratios,
        arch=_match_arch(dims[0], depths) if dims else None,
        fused_stages=sorted(
            int(k.split('.')[1]) for k in backbone
            if k.startswith('score_predictor.') and k.endswith('norm.weight')))
    pred = state.get('decode_head.linear_pred.weight')
    if pred is not None:
        info.update(head_channels=pred.shape[1], num_classes=pred.shape[0])
    alpha = state.get('alpha')
    if alpha is not None:
        info.update(
            alpha=[round(float(a), 6) for a in alpha],
            ensemble_weights=[
                round(float(w), 6) for w in alpha.float().softmax(0)
            ])
    return info
