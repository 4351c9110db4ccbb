"""Load-time key maps of :class:`FusedSwin`: ImageNet Swin checkpoints in
mmseg's ``SwinTransformer`` names.

ImageNet Swin weights come either as the official Microsoft release
(``swin_*_patch4_window*.pth``, weights under ``'model'``, names
``layers.{i}.blocks.{j}.attn.qkv`` / ``mlp.fc1`` / ``downsample.reduction``
...) or as mmseg-converted files (``stages.{i}.blocks.{j}.attn.w_msa.qkv`` /
``ffn.layers.0.0`` ...): :func:`swin_to_mmseg` brings both to mmseg's
names, which :class:`FusedSwin` keeps for everything shared.

Microsoft's PatchMerging concatenates the four pixels of a 2x2 cell in the
order (0, 0), (1, 0), (0, 1), (1, 1) (row, column offsets) as four blocks of
C channels; mmseg's ``nn.Unfold`` puts, per channel, the four offsets in
row-major order (0, 0), (0, 1), (1, 0), (1, 1). The reduction weight's
input dimension and the merging LayerNorm are permuted accordingly
(:func:`merging_to_unfold_order`).
"""
import re
from collections import OrderedDict
from typing import List, Mapping

import torch

Tensor = torch.Tensor

# Microsoft block index k of the 2x2 offset visited at unfold position u
_UNFOLD_FROM_CONCAT = (0, 2, 1, 3)

# Microsoft / reference block sub-module names -> mmseg SwinBlock names
BLOCK_LAYERS = {
    'attn.qkv': 'attn.w_msa.qkv',
    'attn.proj': 'attn.w_msa.proj',
    'mlp.fc1': 'ffn.layers.0.0',
    'mlp.fc2': 'ffn.layers.1',
    'norm1': 'norm1',
    'norm2': 'norm2',
}
BLOCK_TENSORS = {
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


def swin_block_key(stage: str, block: str, name: str) -> str:
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
            name = f'{BLOCK_LAYERS[match[3]]}.{match[4]}'
            out[swin_block_key(match[1], match[2], name)] = value
            continue
        match = _MS_BLOCK_TENSOR.fullmatch(key)
        if match:
            out[swin_block_key(match[1], match[2],
                               BLOCK_TENSORS[match[3]])] = value
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
