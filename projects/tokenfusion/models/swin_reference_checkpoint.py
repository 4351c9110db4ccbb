"""Swin checkpoints -> :class:`GeminiFusionSwin` names.

Two sources:

* ImageNet Swin weights, either the official Microsoft release
  (``swin_*_patch4_window*.pth``, weights under ``'model'``, names
  ``layers.{i}.blocks.{j}.attn.qkv`` / ``mlp.fc1`` / ``downsample.reduction``
  ...) or mmseg-converted files (``stages.{i}.blocks.{j}.attn.w_msa.qkv`` /
  ``ffn.layers.0.0`` ...): :func:`swin_to_mmseg` brings both to mmseg's
  names, which :class:`GeminiFusionSwin` keeps for everything shared.
* Official GeminiFusion Swin segmentation checkpoints (JiaDingCN/
  GeminiFusion, main branch, ``swin_*.pth.tar``):
  :func:`convert_geminifusion_swin_reference`.

Microsoft's PatchMerging concatenates the four pixels of a 2x2 cell in the
order (0, 0), (1, 0), (0, 1), (1, 1) (row, column offsets) as four blocks of
C channels; mmseg's ``nn.Unfold`` puts, per channel, the four offsets in
row-major order (0, 0), (0, 1), (1, 0), (1, 1). The reduction weight's
input dimension and the merging LayerNorm are permuted accordingly
(:func:`merging_to_unfold_order`).
"""
import re
from collections import OrderedDict
from typing import Dict, List, Mapping

import torch

from .reference_checkpoint import reference_state_dict

Tensor = torch.Tensor

# Microsoft block index k of the 2x2 offset visited at unfold position u
_UNFOLD_FROM_CONCAT = (0, 2, 1, 3)

# Microsoft / reference block sub-module names -> mmseg SwinBlock names
_BLOCK_LAYERS = {
    'attn.qkv': 'attn.w_msa.qkv',
    'attn.proj': 'attn.w_msa.proj',
    'mlp.fc1': 'ffn.layers.0.0',
    'mlp.fc2': 'ffn.layers.1',
    'norm1': 'norm1',
    'norm2': 'norm2',
}
_BLOCK_TENSORS = {
    'attn.relative_position_bias_table':
    'attn.w_msa.relative_position_bias_table',
    'attn.relative_position_index': 'attn.w_msa.relative_position_index',
}

# --- official Microsoft ImageNet files ---
_MS_BLOCK = re.compile(r'layers\.(\d+)\.blocks\.(\d+)\.(attn\.qkv|attn\.proj|'
                       r'mlp\.fc1|mlp\.fc2|norm1|norm2)\.(weight|bias)')
_MS_BLOCK_TENSOR = re.compile(
    r'layers\.(\d+)\.blocks\.(\d+)\.(attn\.relative_position_bias_table|'
    r'attn\.relative_position_index)')
_MS_MERGE = re.compile(r'layers\.(\d+)\.downsample\.(reduction|norm)\.'
                       r'(weight|bias)')
_MS_PATCH_EMBED = re.compile(r'patch_embed\.(proj|norm)\.(weight|bias)')
# classification-only tensors: head, final norm, shift masks (recomputed)
_MS_DROPPED = re.compile(r'head\..*|norm\.(weight|bias)|'
                         r'layers\.\d+\.blocks\.\d+\.attn_mask')

# --- official GeminiFusion Swin segmentation checkpoints ---
_REF_BODY = 'encoder.body.'
_REF_BLOCK = re.compile(r'layers\.(\d+)\.blocks\.(\d+)\.(attn\.module\.qkv|'
                        r'attn\.module\.proj|mlp\.fc1\.module|'
                        r'mlp\.fc2\.module|norm1\.module|norm2\.module)\.'
                        r'(weight|bias)')
_REF_BLOCK_TENSOR = re.compile(
    r'layers\.(\d+)\.blocks\.(\d+)\.attn\.module\.'
    r'(relative_position_bias_table|relative_position_index)')
_REF_FUSION = re.compile(r'layers\.(\d+)\.blocks\.(\d+)\.('
                         r'cross_attn_(?:0_to_1|1_to_0)\.(?:in_proj_weight|'
                         r'in_proj_bias|out_proj\.weight|out_proj\.bias)|'
                         r'relation_judger\.0\.fc[12]\.(?:weight|bias)|'
                         r'[kv]_noise\.weight)')
_REF_MERGE = re.compile(r'layers\.(\d+)\.downsample\.module\.(reduction|'
                        r'norm)\.(weight|bias)')
_REF_NORM = re.compile(r'(patch_embed\.norm|norm\d)\.ln_(\d+)\.(weight|bias)')
_REF_PATCH_CONV = re.compile(r'patch_embed\.proj\.module\.(weight|bias)')
_REF_DECODER = re.compile(
    r'decoder\.(linear_c\d\.proj\.(?:weight|bias)|'
    r'linear_fuse\.conv\.weight|linear_fuse\.bn\.'
    r'(?:weight|bias|running_mean|running_var|'
    r'num_batches_tracked)|linear_pred\.(?:weight|bias))')
# where GeminiFusionSwin keeps a block's fusion module
FUSION_PATH = 'attn.drop.fusion'


def merging_to_unfold_order(x: Tensor) -> Tensor:
    """Permute the last dimension (4C) of a PatchMerging tensor from the
    Microsoft concat order to mmseg's ``nn.Unfold`` order.

    x: (..., 4C), index k*C + c -> (..., 4C), index c*4 + u.
    """
    c = x.shape[-1] // 4
    if x.shape[-1] != 4 * c:
        raise ValueError(f'PatchMerging tensor of last dimension '
                         f'{x.shape[-1]}, expected a multiple of 4')
    blocks = x.reshape(*x.shape[:-1], 4, c)
    blocks = blocks[..., list(_UNFOLD_FROM_CONCAT), :]
    return blocks.transpose(-1, -2).reshape(x.shape)


def _block_key(stage: str, block: str, name: str) -> str:
    return f'stages.{stage}.blocks.{block}.{name}'


def swin_to_mmseg(state: Mapping[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """An ImageNet Swin state dict in mmseg's ``SwinTransformer`` names.

    Accepts the Microsoft release (recognised by ``layers.*`` keys: renamed,
    PatchMerging permuted, ``head.*``, the final ``norm.*`` and the
    ``attn_mask`` buffers dropped) or a state dict already in mmseg names
    (returned unchanged). ``module.`` / ``backbone.`` prefixes must have
    been removed.

    Raises:
        KeyError: Microsoft-format keys that match no rule (all listed).
    """
    if not any(k.startswith('layers.') for k in state):
        return OrderedDict(state)
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    unmapped: List[str] = []
    for key, value in state.items():
        match = _MS_BLOCK.fullmatch(key)
        if match:
            name = f'{_BLOCK_LAYERS[match[3]]}.{match[4]}'
            out[_block_key(match[1], match[2], name)] = value
            continue
        match = _MS_BLOCK_TENSOR.fullmatch(key)
        if match:
            out[_block_key(match[1], match[2],
                           _BLOCK_TENSORS[match[3]])] = value
            continue
        match = _MS_MERGE.fullmatch(key)
        if match:
            out[f'stages.{match[1]}.downsample.{match[2]}.{match[3]}'] = \
                merging_to_unfold_order(value)
            continue
        match = _MS_PATCH_EMBED.fullmatch(key)
        if match:
            layer = 'projection' if match[1] == 'proj' else 'norm'
            out[f'patch_embed.{layer}.{match[2]}'] = value
            continue
        if key == 'absolute_pos_embed':
            out[key] = value
            continue
        if not _MS_DROPPED.fullmatch(key):
            unmapped.append(key)
    if unmapped:
        raise KeyError(f'{len(unmapped)} keys of the Swin checkpoint match no '
                       f'Microsoft Swin name: {unmapped}')
    return out


def _stack_modalities(key: str, values: Dict[int, Tensor]) -> Tensor:
    indices = sorted(values)
    if indices != list(range(len(indices))):
        raise ValueError(f'{key}: modality indices ln_{indices} are not '
                         f'0..{len(indices) - 1}')
    return torch.stack([values[m] for m in indices])


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
        OrderedDict: The state dict of a :class:`TokenFusionEncoderDecoder`
        with a :class:`GeminiFusionSwin` backbone and a
        :class:`SegFormerMLPHead` (``decode_head.linear_c{i}.proj``,
        ``linear_fuse``, ``linear_pred`` keep their names) and ``alpha``.
        Block layers get mmseg's ``SwinBlock`` names, the fusion
        parameters ``stages.{i}.blocks.{j}.attn.drop.fusion.*``, PatchMerging
        is permuted to mmseg's unfold order, per-modality norms are stacked
        to (M, C) in ``ln_{m}`` order (0 = RGB, 1 = depth).

    Raises:
        KeyError: Keys that match no reference name (all of them listed).
        ValueError: Per-modality norms whose indices are not 0..M-1.
    """
    state = reference_state_dict(checkpoint, 'GeminiFusion Swin')
    out: Dict[str, object] = OrderedDict()
    norms: Dict[str, Dict[int, Tensor]] = OrderedDict()
    unmapped: List[str] = []
    for key, value in state.items():
        if key == 'alpha':
            out[key] = value
            continue
        match = _REF_DECODER.fullmatch(key)
        if match:
            out[f'decode_head.{match[1]}'] = value
            continue
        if not key.startswith(_REF_BODY):
            unmapped.append(key)
            continue
        name = key[len(_REF_BODY):]
        match = _REF_BLOCK.fullmatch(name)
        if match:
            layer = _BLOCK_LAYERS[match[3].replace('.module', '')]
            out['backbone.' +
                _block_key(match[1], match[2], f'{layer}.{match[4]}')] = value
            continue
        match = _REF_BLOCK_TENSOR.fullmatch(name)
        if match:
            out['backbone.' +
                _block_key(match[1], match[2],
                           _BLOCK_TENSORS[f'attn.{match[3]}'])] = value
            continue
        match = _REF_FUSION.fullmatch(name)
        if match:
            out['backbone.' + _block_key(match[1], match[2],
                                         f'{FUSION_PATH}.{match[3]}')] = value
            continue
        match = _REF_MERGE.fullmatch(name)
        if match:
            out[f'backbone.stages.{match[1]}.downsample.{match[2]}.'
                f'{match[3]}'] = merging_to_unfold_order(value)
            continue
        match = _REF_PATCH_CONV.fullmatch(name)
        if match:
            out[f'backbone.patch_embed.projection.{match[1]}'] = value
            continue
        match = _REF_NORM.fullmatch(name)
        if match:
            target = f'backbone.{match[1]}.{match[3]}'
            norms.setdefault(target, {})[int(match[2])] = value
            continue
        unmapped.append(key)
    if unmapped:
        raise KeyError(
            f'{len(unmapped)} checkpoint keys match no GeminiFusion '
            f'Swin reference name: {unmapped}')
    if not norms:
        raise ValueError('No per-modality norm (ln_<m>) keys: not a '
                         'GeminiFusion Swin checkpoint')
    for target, values in norms.items():
        out[target] = _stack_modalities(target, values)
    return out
