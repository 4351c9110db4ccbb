"""Official GeminiFusion Swin segmentation checkpoints (JiaDingCN/
GeminiFusion, main branch, ``swin_*.pth.tar``) -> :class:`FusedSwin` /
:class:`MultiStreamEncoderDecoder` names:
:func:`convert_geminifusion_swin_reference`.

Shared layers take mmseg's Swin names (the load-time rules of
:mod:`projects.multimodal_seg.models.backbones.swin_checkpoint`, PatchMerging
permuted to mmseg's unfold order), the fusion modules those of a
``GeminiFusion`` fusion layer.
"""
import re
from collections import OrderedDict
from typing import Callable, Dict, List, Mapping, NamedTuple, Optional, Tuple

import torch

from projects.multimodal_seg.models.backbones.swin_checkpoint import (
    BLOCK_LAYERS, BLOCK_TENSORS, merging_to_unfold_order, swin_block_key)
from .reference_keys import (GEMINI_PARAMS, check_alpha, modality_count,
                             reference_state_dict, stack_rows)

Tensor = torch.Tensor

# where FusedSwin keeps the fusion module of block j of stage i
# (the first fusion layer, a GeminiFusion)
FUSION_PATH = 'fusion_layers.0.sites.{stage}.{block}'


class SwinRule(NamedTuple):
    """One name rule: a reference key (main-branch names without
    ``module.``) that fully matches ``pattern`` becomes ``target(match)``,
    its tensor passed through ``transform`` if set. With ``modality`` set,
    that group is the modality index m and the tensor is row m of the
    stacked target."""
    pattern: 're.Pattern'
    target: Callable[['re.Match'], str]
    modality: Optional[int] = None
    transform: Optional[Callable[[Tensor], Tensor]] = None


_BODY = r'encoder\.body\.'
_BLOCK = _BODY + r'layers\.(\d+)\.blocks\.(\d+)\.'


def _block_layer(m: 're.Match') -> str:
    layer = BLOCK_LAYERS[m[3].replace('.module', '')]
    return 'backbone.' + swin_block_key(m[1], m[2], f'{layer}.{m[4]}')


def _block_tensor(m: 're.Match') -> str:
    return 'backbone.' + swin_block_key(m[1], m[2],
                                        BLOCK_TENSORS[f'attn.{m[3]}'])


def _fusion_site(m: 're.Match') -> str:
    return f'backbone.{FUSION_PATH.format(stage=m[1], block=m[2])}.{m[3]}'


RULES: Tuple[SwinRule, ...] = (
    # shared block layers (ModuleParallel adds a '.module' segment)
    SwinRule(
        re.compile(_BLOCK + r'(attn\.module\.qkv|attn\.module\.proj|'
                   r'mlp\.fc1\.module|mlp\.fc2\.module|norm1\.module|'
                   r'norm2\.module)\.(weight|bias)'), _block_layer),
    SwinRule(
        re.compile(_BLOCK + r'attn\.module\.(relative_position_bias_table|'
                   r'relative_position_index)'), _block_tensor),
    # GeminiFusion module of a block -> its site in the fusion layer
    SwinRule(
        re.compile(_BLOCK + '(' + '|'.join(map(re.escape, GEMINI_PARAMS)) +
                   ')'), _fusion_site),
    # PatchMerging, permuted to mmseg's unfold order
    SwinRule(
        re.compile(_BODY + r'layers\.(\d+)\.downsample\.module\.'
                   r'(reduction|norm)\.(weight|bias)'),
        lambda m: f'backbone.stages.{m[1]}.downsample.{m[2]}.{m[3]}',
        transform=merging_to_unfold_order),
    SwinRule(
        re.compile(_BODY + r'patch_embed\.proj\.module\.(weight|bias)'),
        lambda m: f'backbone.patch_embed.projection.{m[1]}'),
    # per-modality norms (LayerNormParallel)
    SwinRule(
        re.compile(_BODY + r'(patch_embed\.norm|norm\d)\.ln_(\d+)\.'
                   r'(weight|bias)'),
        lambda m: f'backbone.{m[1]}.{m[3]}',
        modality=2),
    SwinRule(
        re.compile(r'decoder\.(linear_c\d\.proj\.(?:weight|bias)|'
                   r'linear_fuse\.conv\.weight|linear_fuse\.bn\.'
                   r'(?:weight|bias|running_mean|running_var|'
                   r'num_batches_tracked)|linear_pred\.(?:weight|bias))'),
        lambda m: f'decode_head.{m[1]}'),
    SwinRule(re.compile('alpha'), lambda m: 'alpha'),
)


def convert_geminifusion_swin_reference(
        checkpoint: Mapping) -> 'OrderedDict[str, Tensor]':
    """Convert an official GeminiFusion Swin segmentation checkpoint.

    The reference ``WeTr`` (main branch) saves ``{'segmenter': state, ...}``
    with the DataParallel prefix ``module.``; the Swin encoder sits in
    ``encoder.body``. Its shared layers are wrapped in ``ModuleParallel``
    (an extra ``.module.`` segment: ``layers.{i}.blocks.{j}.attn.module.qkv``,
    ``norm1.module``, ``mlp.fc1.module``, ``downsample.module.reduction``,
    ``patch_embed.proj.module``), the per-modality norms are
    ``LayerNormParallel`` (``patch_embed.norm.ln_{m}``, ``norm{k}.ln_{m}``)
    and the GeminiFusion parameters sit directly in each
    ``SwinTransformerBlock`` (``layers.{i}.blocks.{j}.cross_attn_0_to_1``,
    ``relation_judger.0.fc1``, ``k_noise`` ...).

    Returns:
        OrderedDict: The state dict of a :class:`MultiStreamEncoderDecoder`
        with a :class:`FusedSwin` backbone (fusion: one ``GeminiFusion``
        layer) and a :class:`SegFormerMLPHead`
        (``decode_head.linear_c{i}.proj``, ``linear_fuse``, ``linear_pred``
        keep their names) and ``alpha``. Block layers get mmseg's
        ``SwinBlock`` names, the fusion parameters
        ``fusion_layers.0.sites.{i}.{j}.*``, PatchMerging
        is permuted to mmseg's unfold order, per-modality norms are stacked
        to (M, C) in ``ln_{m}`` order (0 = RGB, 1 = depth).

    All name rules are in one table, :data:`RULES`.

    Raises:
        KeyError: Keys that match no rule (all of them listed).
        ValueError: Per-modality norms whose indices are not 0..M-1 with
            M = 2 everywhere, or that do not stack; an ``alpha`` that is
            not (2, ).
    """
    state = reference_state_dict(checkpoint, 'GeminiFusion Swin')
    out: Dict[str, object] = OrderedDict()
    unmapped: List[str] = []
    for key, value in state.items():
        for rule in RULES:
            match = rule.pattern.fullmatch(key)
            if match is None:
                continue
            target = rule.target(match)
            if rule.transform is not None:
                value = rule.transform(value)
            if rule.modality is None:
                out[target] = value
            else:
                out.setdefault(target, {})[int(match[rule.modality])] = value
            break
        else:
            unmapped.append(key)
    if unmapped:
        raise KeyError(
            f'{len(unmapped)} checkpoint keys match no GeminiFusion '
            f'Swin reference name: {unmapped}')
    norms = {k: v for k, v in out.items() if isinstance(v, dict)}
    if not norms:
        raise ValueError('No per-modality norm (ln_<m>) keys: not a '
                         'GeminiFusion Swin checkpoint')
    num_modalities = modality_count(norms, 'per-modality norms (ln_<m>)')
    if num_modalities != 2:
        raise ValueError(f'GeminiFusion Swin fuses 2 modalities, but the '
                         f'norms have {num_modalities} (ln_0..'
                         f'ln_{num_modalities - 1})')
    stack_rows(out, norms)
    check_alpha(out, num_modalities)
    return out
