"""Official TokenFusion (yikaiw/TokenFusion) and GeminiFusion
(JiaDingCN/GeminiFusion) segmentation checkpoints ->
:class:`MultiStreamEncoderDecoder` state dicts (:class:`FusedMiT`
backbone; Swin files: :mod:`.swin_reference_keys`).

Both reference code bases build the same two-stream MiT (``WeTr``). The
main-branch files are ``{'segmenter': state_dict, 'epoch_start': ...,
'best_val': ...}`` with the ``nn.DataParallel`` prefix ``module.`` on every
key. Their names differ from ours in these ways:

* ``ModuleParallel`` wraps every shared conv / linear layer, adding a
  ``.module.`` segment (``encoder.block1.0.attn.q.module.weight``);
* ``LayerNormParallel`` holds one ``nn.LayerNorm`` per modality as
  ``ln_0, ln_1, ...``; we keep one (M, C) ``weight`` / ``bias``;
* Mix-FFN's depthwise conv is ``mlp.dwconv.dwconv``; ours is ``mlp.dwconv``;
* TokenFusion: ``score_predictor.{s}``, a ``PredictorLG`` per stage, holds
  one ``nn.Sequential`` per modality in ``score_nets.{m}`` (LayerNorm at
  index 0, Linear layers at 1, 3, 5, 7); ours is the fusion layer's
  ``fusion_layers.0.score_predictors.{s}`` with ``norm, fc1 .. fc4`` and a
  leading M dimension;
* GeminiFusion: the fusion module's tensors sit directly in the block's
  attention (``block{s}.{j}.attn.cross_attn_0_to_1.in_proj_weight``,
  ``attn.k_noise``, ...); ours are in the fusion layer, at
  ``fusion_layers.0.sites.{s-1}.{j}.*`` (0-based stage), same inner names.

The encoder becomes ``backbone.``, the SegFormer MLP head ``decode_head.``
(its names ``linear_c{i}.proj``, ``linear_fuse.{conv,bn}``, ``linear_pred``
are kept) and the ensemble weights ``alpha`` stay ``alpha``. All rules are
in one table, :data:`RULES`.

GeminiFusion's DeLiVER branch saves ``model.state_dict()`` directly (or
under ``'model_state_dict'`` in ``*_checkpoint.pth``) with the keys
``backbone.`` / ``decode_head.`` / ``alpha`` and the same inner names. With
more than two modalities its patch-embed norms have one ``ln_{m}`` per
modality while every other norm has two (stream 0 = RGB, stream 1 = the
aggregated auxiliary modalities), and the aggregation hub adds
``backbone.extra_score_predictor.{stage}.score_nets.{i}.{0,1}.*``, ours
``backbone.hub.score_predictors.{stage}.score_nets.{i}.{0,1}.*``.
"""
import re
from collections import Counter, OrderedDict
from typing import (Callable, Dict, FrozenSet, List, Mapping, NamedTuple,
                    Optional, Tuple, Union)

import torch

from projects.multimodal_seg.models.backbones.fused_mit import MIT_ARCHS
from projects.multimodal_seg.models.backbones.fused_swin import SWIN_ARCHS

Tensor = torch.Tensor

TOKENFUSION = 'tokenfusion'
GEMINIFUSION = 'geminifusion'
_BOTH = frozenset((TOKENFUSION, GEMINIFUSION))

# nn.Sequential index in PredictorLG.score_nets[m] -> our layer name
_PREDICTOR_LAYERS = {
    '0': 'norm',
    '1': 'fc1',
    '3': 'fc2',
    '5': 'fc3',
    '7': 'fc4'
}
# tensors of one GeminiFusion module (reference names, relative to attn.)
GEMINI_PARAMS = (
    'cross_attn_0_to_1.in_proj_weight',
    'cross_attn_0_to_1.in_proj_bias',
    'cross_attn_0_to_1.out_proj.weight',
    'cross_attn_0_to_1.out_proj.bias',
    'cross_attn_1_to_0.in_proj_weight',
    'cross_attn_1_to_0.in_proj_bias',
    'cross_attn_1_to_0.out_proj.weight',
    'cross_attn_1_to_0.out_proj.bias',
    'relation_judger.0.fc1.weight',
    'relation_judger.0.fc1.bias',
    'relation_judger.0.fc2.weight',
    'relation_judger.0.fc2.bias',
    'k_noise.weight',
    'v_noise.weight',
)
_BLOCK = r'block\d+\.\d+'
# where our keys put the fusion layer (the first, and only, one of the
# backbone) and the hub
FUSION = 'backbone.fusion_layers.0.'
HUB = 'backbone.hub.score_predictors.'


def gemini_site(block: str) -> str:
    """``'block{s}.{j}'`` (reference names, 1-based stage) -> our prefix of
    that block's GeminiFusion module."""
    stage, index = block[len('block'):].split('.')
    return f'{FUSION}sites.{int(stage) - 1}.{index}.'


class Rule(NamedTuple):
    """One name rule: a reference key (main-branch names without
    ``module.``) that fully matches ``pattern`` becomes ``target`` (a
    ``re`` template such as ``r'backbone.\\1.\\2'``, or a function of the
    match). With ``modality`` set, that group is the modality index m and
    the tensor is row m of the stacked target."""
    families: FrozenSet[str]
    pattern: 're.Pattern'
    target: Union[str, Callable[['re.Match'], str]]
    modality: Optional[int] = None


RULES: Tuple[Rule, ...] = (
    # shared (ModuleParallel) conv / linear layers
    Rule(
        _BOTH,
        re.compile(r'encoder\.(patch_embed\d+\.proj|' + _BLOCK +
                   r'\.(?:attn\.(?:q|kv|proj|sr)|mlp\.(?:fc1|fc2)))'
                   r'\.module\.(weight|bias)'), r'backbone.\1.\2'),
    Rule(
        _BOTH,
        re.compile(r'encoder\.(' + _BLOCK + r'\.mlp)\.dwconv\.dwconv\.'
                   r'(weight|bias)'), r'backbone.\1.dwconv.\2'),
    # per-modality LayerNorms (LayerNormParallel)
    Rule(
        _BOTH,
        re.compile(r'encoder\.(patch_embed\d+\.norm|norm\d+|' + _BLOCK +
                   r'\.(?:norm1|norm2|attn\.norm))\.ln_(\d+)\.(weight|bias)'),
        r'backbone.\1.\3',
        modality=2),
    # TokenFusion's PredictorLG, one net per modality
    Rule(
        frozenset((TOKENFUSION, )),
        re.compile(r'encoder\.score_predictor\.(\d+)\.score_nets\.(\d+)\.'
                   r'([01357])\.(weight|bias)'),
        lambda m: (f'{FUSION}score_predictors.{m[1]}.'
                   f'{_PREDICTOR_LAYERS[m[3]]}.{m[4]}'),
        modality=2),
    # GeminiFusion module of a block
    Rule(
        frozenset((GEMINIFUSION, )),
        re.compile(r'encoder\.(' + _BLOCK + r')\.attn\.(' +
                   '|'.join(map(re.escape, GEMINI_PARAMS)) + ')'),
        lambda m: gemini_site(m[1]) + m[2]),
    # DeLiVER branch, > 2 modalities: CMNeXt-style aggregation hub
    Rule(
        frozenset((GEMINIFUSION, )),
        re.compile(r'encoder\.extra_score_predictor\.(\d+\.score_nets\.\d+\.'
                   r'[01]\.(?:weight|bias))'), HUB + r'\1'),
    Rule(
        _BOTH,
        re.compile(r'decoder\.(linear_c\d+\.proj\.(?:weight|bias)|'
                   r'linear_fuse\.conv\.weight|linear_fuse\.bn\.'
                   r'(?:weight|bias|running_mean|running_var|'
                   r'num_batches_tracked)|linear_pred\.(?:weight|bias))'),
        r'decode_head.\1'),
    Rule(_BOTH, re.compile('alpha'), 'alpha'),
)

# GeminiFusion DeLiVER-branch prefixes -> main-branch prefixes
_DELIVER_PREFIXES = (('backbone.', 'encoder.'), ('decode_head.', 'decoder.'))
_PATCH_EMBED_NORM = re.compile(r'backbone\.patch_embed\d+\.norm\.\w+')


def reference_state_dict(checkpoint: Mapping,
                         what: str = 'TokenFusion') -> Dict[str, Tensor]:
    """The reference model's weights without the DataParallel prefix:
    ``checkpoint['segmenter']`` (main branch), ``['model_state_dict']``
    (GeminiFusion DeLiVER ``*_checkpoint.pth``) or a bare state dict."""
    state = checkpoint
    for wrapper in ('segmenter', 'model_state_dict'):
        if wrapper in checkpoint:
            state = checkpoint[wrapper]
            break
    if not isinstance(state, Mapping) or not state or not all(
            isinstance(v, Tensor) for v in state.values()):
        raise TypeError(f"Not a {what} checkpoint: expected a dict with "
                        "'segmenter' / 'model_state_dict' or a state dict "
                        'of tensors')
    return OrderedDict(
        (k[len('module.'):] if k.startswith('module.') else k, v)
        for k, v in state.items())


def _apply_rules(state: Mapping[str, Tensor], family: str,
                 names: Mapping[str, str]) -> Dict[str, object]:
    """Rename by :data:`RULES`; per-modality tensors are collected as
    ``{target: {m: tensor}}``. ``names`` gives the checkpoint's own name of
    a key (for the error). Unmatched keys -> KeyError listing them all."""
    rules = [rule for rule in RULES if family in rule.families]
    out: Dict[str, object] = OrderedDict()
    unmapped: List[str] = []
    for key, value in state.items():
        for rule in rules:
            match = rule.pattern.fullmatch(key)
            if match is None:
                continue
            target = match.expand(rule.target) if isinstance(
                rule.target, str) else rule.target(match)
            if rule.modality is None:
                out[target] = value
            else:
                out.setdefault(target, {})[int(match[rule.modality])] = value
            break
        else:
            unmapped.append(names.get(key, key))
    if unmapped:
        raise KeyError(f'{len(unmapped)} checkpoint keys match no {family} '
                       f'reference name: {unmapped}')
    return out


def modality_count(groups: Mapping[str, Mapping[int, Tensor]],
                   what: str) -> int:
    """M of per-modality tensors ``{target: {m: tensor}}``: all of them
    must have the indices 0..M-1 (those of most of them)."""
    if not groups:
        raise ValueError(f'No {what} (ln_<m> keys)')
    indices = {k: tuple(sorted(v)) for k, v in groups.items()}
    common = Counter(indices.values()).most_common(1)[0][0]
    odd = {k: list(v) for k, v in indices.items() if v != common}
    if odd:
        raise ValueError(f'Inconsistent modalities: most {what} have the '
                         f'indices {list(common)}, but {odd}')
    if common != tuple(range(len(common))):
        raise ValueError(f'Modality indices {list(common)} of the {what} '
                         f'are not 0..{len(common) - 1}')
    return len(common)


def _stack_modalities(out: Dict[str, object], family: str) -> int:
    """Stack the per-modality tensors of ``out`` in place; returns the
    number of streams (rows of the block norms and of ``alpha``)."""
    per_modality = {k: v for k, v in out.items() if isinstance(v, dict)}
    if not per_modality:
        raise ValueError(f'No per-modality LayerNorm (ln_<m>) keys: not a '
                         f'{family} checkpoint')
    what = 'per-modality tensors (ln_<m> / score_nets.<m>)'
    hub = any(k.startswith(HUB) for k in out)
    if family == GEMINIFUSION and hub:
        # DeLiVER, M > 2: patch-embed norms per modality, the rest per stream
        embed = {
            k: v
            for k, v in per_modality.items() if _PATCH_EMBED_NORM.fullmatch(k)
        }
        streams = {k: v for k, v in per_modality.items() if k not in embed}
        num_streams = modality_count(streams, 'block / stage norms')
        if not embed:
            raise ValueError('extra_score_predictor keys but no '
                             'patch-embed norms (patch_embed<s>.norm.ln_<m>)')
        num_modalities = modality_count(embed, 'patch-embed norms')
        if num_modalities < 2:
            raise ValueError(f'patch-embed norms have {num_modalities} '
                             'modality, expected >= 2')
    else:
        num_streams = modality_count(per_modality, what)
    if family == GEMINIFUSION and num_streams != 2:
        raise ValueError(f'GeminiFusion has 2 streams, but the block / stage '
                         f'norms have {num_streams} (ln_0..'
                         f'ln_{num_streams - 1})')
    stack_rows(out, per_modality)
    return num_streams


def stack_rows(out: Dict[str, object],
               per_modality: Mapping[str, Mapping[int, Tensor]]) -> None:
    """``out[target]`` = the tensors ``{m: tensor}`` of every target of
    ``per_modality`` stacked, row m = modality m (indices 0..M-1, as
    :func:`modality_count` checks)."""
    for key, values in per_modality.items():
        shapes = {tuple(v.shape) for v in values.values()}
        if len(shapes) > 1:
            raise ValueError(f'{key}: per-modality shapes differ: {shapes}')
        out[key] = torch.stack([values[m] for m in range(len(values))])


def check_alpha(out: Mapping[str, Tensor], num_streams: int) -> None:
    alpha = out.get('alpha')
    if alpha is not None and tuple(alpha.shape) != (num_streams, ):
        raise ValueError(f'alpha has shape {tuple(alpha.shape)}, expected '
                         f'({num_streams},)')


def convert_tokenfusion_reference(checkpoint: Mapping) -> OrderedDict:
    """Convert an official TokenFusion segmentation checkpoint.

    Args:
        checkpoint (Mapping): The loaded file (weights under
            ``'segmenter'``) or its state dict, keys with or without the
            ``module.`` prefix.

    Returns:
        OrderedDict: The state dict of the matching
        :class:`MultiStreamEncoderDecoder` (``FusedMiT`` with one
        ``TokenExchange`` fusion layer); per-modality tensors are stacked
        over the modalities in index order (0 = RGB, 1 = depth). The number
        of modalities M is that of the ``ln_{m}`` indices.
        :func:`describe_tokenfusion_state` summarises it.

    Raises:
        KeyError: Keys that match no rule (all of them are listed).
        ValueError: Per-modality tensors whose modality indices are not
            0..M-1 with the same M everywhere, or that do not stack; an
            ``alpha`` that is not (M, ).
    """
    state = reference_state_dict(checkpoint, 'TokenFusion')
    out = _apply_rules(state, TOKENFUSION, {})
    check_alpha(out, _stack_modalities(out, TOKENFUSION))
    return out


def is_swin_reference(state: Mapping[str, Tensor]) -> bool:
    """A GeminiFusion main-branch Swin model (``encoder.body.*`` keys)."""
    return any(k.startswith('encoder.body.') for k in state)


def convert_geminifusion_mit_reference(
        state: Mapping[str, Tensor]) -> OrderedDict:
    """Convert the weights of a GeminiFusion MiT model (main-branch names
    without ``module.``, as :func:`reference_state_dict` returns; or the
    DeLiVER-branch ``backbone.`` / ``decode_head.`` names) into those of a
    :class:`MultiStreamEncoderDecoder` with a ``FusedMiT`` whose one fusion
    layer is a ``GeminiFusion`` (and, with more than two modalities, an
    ``AuxiliaryHub``): per-modality norms stacked, row m = ``ln_{m}``. The
    fusion heads are not stored in the weights: they come from the config
    (reference: 8).

    Besides the name rules and the modality checks every block must hold
    a complete fusion module: the reference builds one in every block.
    """
    keys = list(state)
    deliver = any(k.startswith(('backbone.', 'decode_head.')) for k in keys)
    names: Dict[str, str] = {}
    renamed = OrderedDict()
    for key, value in state.items():
        new = key
        if deliver:
            for theirs, ours in _DELIVER_PREFIXES:
                if key.startswith(theirs):
                    new = ours + key[len(theirs):]
                    break
            else:
                # not a DeLiVER name: keep it unmatchable
                new = '<unknown>.' + key if key != 'alpha' else key
        names[new] = key
        renamed[new] = value
    out = _apply_rules(renamed, GEMINIFUSION, names)
    check_alpha(out, _stack_modalities(out, GEMINIFUSION))

    blocks = sorted({
        m[1]
        for m in map(
            re.compile(r'backbone\.(' + _BLOCK +
                       r')\.attn\.q\.weight').fullmatch, out) if m
    })
    missing = [
        f'{b}.attn.{p}' for b in blocks for p in GEMINI_PARAMS
        if gemini_site(b) + p not in out
    ]
    if missing:
        raise KeyError(f'{len(missing)} GeminiFusion tensors missing (the '
                       f'reference has a fusion module in every block): '
                       f'{missing}')
    return out


def _match_arch(embed_dims: int, depths: List[int]) -> Optional[str]:
    for name, arch in MIT_ARCHS.items():
        if arch['embed_dims'] == embed_dims and list(
                arch['num_layers']) == depths:
            return name
    return None


def describe_tokenfusion_state(state: Mapping[str, Tensor]) -> dict:
    """What a converted TokenFusion / GeminiFusion state dict
    (``backbone.*`` keys, as :func:`convert_tokenfusion_reference` and
    ``geminifusion2mmseg.convert_geminifusion_reference`` return) holds:
    fusion kind, modalities, per-stage channels / depths / sr ratios, the
    preset it matches, fused stages (0-based), fusion sites, hub stages,
    head channels, classes and ensemble weights. Plain Python values (for
    printing and checkpoint meta).

    GeminiFusion: ``fusion_channels`` lists C of every stage with fusion
    modules; the number of fusion heads is not in the weights (any
    divisor of C fits them), ``fusion_heads`` says so."""
    backbone = {
        k[len('backbone.'):]: v
        for k, v in state.items() if k.startswith('backbone.')
    }
    if 'patch_embed.projection.weight' in backbone:
        info = _describe_swin_backbone(backbone)
    else:
        info = _describe_mit_backbone(backbone)
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


_FUSION_HEADS_NOTE = ('not stored in the weights: set backbone.fusion.heads '
                      'in the config (reference: 8)')


def _describe_swin_backbone(backbone: Mapping[str, Tensor]) -> dict:
    """Summary of a ``FusedSwin`` state (``backbone.`` stripped)."""
    stages = sorted(
        int(m[1])
        for m in map(re.compile(r'norm(\d+)\.weight').fullmatch, backbone)
        if m)
    dims = [backbone[f'norm{s}.weight'].shape[-1] for s in stages]
    depths = [
        len({
            k.split('.')[3]
            for k in backbone if k.startswith(f'stages.{s}.blocks.')
        }) for s in stages
    ]
    table = backbone['stages.0.blocks.0.attn.w_msa.'
                     'relative_position_bias_table']
    window = (round(table.shape[0]**0.5) + 1) // 2
    sites = [
        k for k in backbone if k.startswith('fusion_layers.0.sites.')
        and k.endswith('.k_noise.weight')
    ]
    arch = next((name for name, preset in SWIN_ARCHS.items()
                 if preset['embed_dims'] == dims[0] and list(preset['depths'])
                 == depths and preset['window_size'] == window), None)
    info = dict(
        fusion=GEMINIFUSION if sites else 'none',
        backbone='swin',
        num_modalities=backbone['patch_embed.norm.weight'].shape[0],
        num_streams=backbone[f'norm{stages[-1]}.weight'].shape[0],
        in_channels=backbone['patch_embed.projection.weight'].shape[1],
        embed_dims=dims,
        depths=depths,
        window_size=window,
        arch=arch)
    if sites:
        info.update(fusion_sites=len(sites), fusion_heads=_FUSION_HEADS_NOTE)
    return info


def _describe_mit_backbone(backbone: Mapping[str, Tensor]) -> dict:
    """Summary of a ``FusedMiT`` state (``backbone.`` stripped)."""
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
    gemini = re.compile(
        r'fusion_layers\.0\.sites\.(\d+)\.(\d+)\.k_noise\.weight')
    gemini_sites = [m for m in map(gemini.fullmatch, backbone) if m]
    predictors = 'fusion_layers.0.score_predictors.'
    if gemini_sites:
        fusion = GEMINIFUSION
    elif any(k.startswith(predictors) for k in backbone):
        fusion = TOKENFUSION
    else:
        fusion = 'none'
    info = dict(
        fusion=fusion,
        num_modalities=backbone['patch_embed1.norm.weight'].shape[0],
        num_streams=backbone[f'norm{stages[-1]}.weight'].shape[0],
        in_channels=backbone['patch_embed1.proj.weight'].shape[1],
        embed_dims=dims,
        depths=depths,
        sr_ratios=sr_ratios,
        arch=_match_arch(dims[0], depths) if dims else None)
    if fusion == GEMINIFUSION:
        fused = sorted({int(m[1]) for m in gemini_sites})
        info.update(
            fused_stages=fused,
            fusion_sites=len(gemini_sites),
            fusion_channels=[dims[stages.index(s + 1)] for s in fused],
            fusion_heads=_FUSION_HEADS_NOTE)
        hub = sorted({
            int(k.split('.')[2])
            for k in backbone if k.startswith('hub.score_predictors.')
        })
        if hub:
            info.update(hub_stages=hub)
    else:
        info.update(
            fused_stages=sorted(
                int(k[len(predictors):].split('.')[0]) for k in backbone
                if k.startswith(predictors) and k.endswith('norm.weight')))
    return info
