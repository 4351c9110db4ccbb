"""Convert an official DeiT checkpoint (facebookresearch/deit, e.g.
``deit_small_patch16_224-cd65a155.pth``: ``{'model': state_dict}`` with
timm's names) into mmpretrain's ``ImageClassifier`` names, for DeiT and
for ``MCTFVisionTransformer`` (same parameters)::

    python tools/model_converters/deit2mmpretrain.py \\
        deit_small_patch16_224-cd65a155.pth checkpoints/deit-small.pth

Every key must match a rule below; anything else (a distillation token or
head of a distilled DeiT, an unknown key) is an error naming it.

=====================================  ======================================
timm                                   mmpretrain
=====================================  ======================================
cls_token, pos_embed                   backbone.cls_token, backbone.pos_embed
patch_embed.proj.*                     backbone.patch_embed.projection.*
blocks.{i}.norm1.* / norm2.*           backbone.layers.{i}.ln1.* / ln2.*
blocks.{i}.attn.qkv.* / attn.proj.*    backbone.layers.{i}.attn.qkv.* / proj.*
blocks.{i}.mlp.fc1.*                   backbone.layers.{i}.ffn.layers.0.0.*
blocks.{i}.mlp.fc2.*                   backbone.layers.{i}.ffn.layers.1.*
norm.*                                 backbone.ln1.*
head.*                                 head.layers.head.*
=====================================  ======================================
"""
import argparse
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict

import torch

RULES = (
    (r'^(cls_token|pos_embed)$', r'backbone.\1'),
    (r'^patch_embed\.proj\.(weight|bias)$',
     r'backbone.patch_embed.projection.\1'),
    (r'^blocks\.(\d+)\.norm([12])\.(weight|bias)$',
     r'backbone.layers.\1.ln\2.\3'),
    (r'^blocks\.(\d+)\.attn\.(qkv|proj)\.(weight|bias)$',
     r'backbone.layers.\1.attn.\2.\3'),
    (r'^blocks\.(\d+)\.mlp\.fc1\.(weight|bias)$',
     r'backbone.layers.\1.ffn.layers.0.0.\2'),
    (r'^blocks\.(\d+)\.mlp\.fc2\.(weight|bias)$',
     r'backbone.layers.\1.ffn.layers.1.\2'),
    (r'^norm\.(weight|bias)$', r'backbone.ln1.\1'),
    (r'^head\.(weight|bias)$', r'head.layers.head.\1'),
)
DISTILLED = ('dist_token', 'head_dist.weight', 'head_dist.bias')


def convert_deit(state_dict: Dict[str, torch.Tensor],
                 source: str = 'the checkpoint') -> 'OrderedDict':
    """timm DeiT state dict -> mmpretrain ImageClassifier state dict."""
    distilled = [k for k in DISTILLED if k in state_dict]
    if distilled:
        raise ValueError(
            f'{source} is a distilled DeiT ({distilled}): its distillation '
            'token and head have no place in a ViT with one class token; '
            'use the non-distilled DeiT weights')
    converted = OrderedDict()
    unknown = []
    for key, value in state_dict.items():
        for pattern, target in RULES:
            if re.match(pattern, key):
                converted[re.sub(pattern, target, key)] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise KeyError(f'{source}: {len(unknown)} keys are not DeiT keys '
                       f'(timm names), e.g. {unknown[:5]}')
    return converted


def load_deit(path: str) -> Dict[str, torch.Tensor]:
    """The state dict of an official DeiT file (``{'model': ...}``) or of a
    plain timm state dict."""
    checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(checkpoint, dict):
        raise TypeError(f'{path} holds a {type(checkpoint).__name__}, not a '
                        'state dict')
    if 'model' in checkpoint:
        checkpoint = checkpoint['model']
    if not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise TypeError(f'{path} is not a DeiT state dict (expected '
                        "tensors, under 'model' in the official files)")
    return checkpoint


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert an official DeiT checkpoint to mmpretrain')
    parser.add_argument('src', help='official DeiT checkpoint')
    parser.add_argument('dst', help='output file')
    args = parser.parse_args(argv)
    state_dict = convert_deit(load_deit(args.src), args.src)
    if osp.dirname(args.dst):
        os.makedirs(osp.dirname(args.dst), exist_ok=True)
    torch.save(
        dict(
            state_dict=state_dict,
            meta=dict(converted_from=osp.basename(args.src))), args.dst)
    print(f'{len(state_dict)} tensors -> {args.dst}')


if __name__ == '__main__':
    main()
