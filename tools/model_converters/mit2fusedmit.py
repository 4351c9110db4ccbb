"""Turn an ImageNet MiT checkpoint into a ``FusedMiT`` initialisation.

The source is NVlabs SegFormer's ``mit_b*.pth`` or an mmseg-converted MiT
(``layers.*`` keys, ``tools/model_converters/mit2mmseg.py`` of mmseg). The
output holds the backbone state of a ``FusedMiT`` with M modalities (one
stream each) as ``{'state_dict': ..., 'meta': ...}``: shared layers take
the single weights, every modality's LayerNorms start as copies of the
single one, the classifier ``head.*`` is dropped, and fusion layers are
left out (they start from their own initialisation, as in the reference).
Use it as ``init_cfg=dict(type='Pretrained', checkpoint=DST)``::

    python tools/model_converters/mit2fusedmit.py \\
        pretrained/mit_b3.pth checkpoints/mit_b3_fused_m2.pth \\
        --num-modalities 2 --arch b3

Without ``--arch`` the stage widths, depths, sr ratios and MLP ratio are
read from the checkpoint; with it the checkpoint must fit that preset.
"""
import argparse
import os
import os.path as osp
import re
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402

from projects.common.checkpoint import unwrap_state_dict  # noqa: E402
from projects.multimodal_seg.models.backbones.fused_mit import (  # noqa: E402
    MIT_ARCHS, FusedMiT)
from projects.multimodal_seg.models.backbones.mit_checkpoint import (  # noqa: E402,E501
    mit_to_fused, mmseg_mit_to_nvlabs)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='ImageNet MiT -> FusedMiT initialisation')
    parser.add_argument('src', help='NVlabs mit_b*.pth or mmseg MiT file')
    parser.add_argument('dst', help='output checkpoint (.pth)')
    parser.add_argument(
        '--num-modalities',
        type=int,
        required=True,
        help='number of modalities M of the fused backbone')
    parser.add_argument(
        '--arch',
        choices=sorted(MIT_ARCHS),
        help='MiT preset the checkpoint must fit (default: read the '
        'architecture from the checkpoint)')
    return parser.parse_args(argv)


def nvlabs_state(checkpoint: dict, source: str = 'checkpoint') -> dict:
    """The MiT weights of a loaded file in NVlabs names."""
    state = unwrap_state_dict(checkpoint, source)
    if any(k.startswith('layers.') for k in state):
        state = mmseg_mit_to_nvlabs(state)
    return state


def backbone_kwargs(state: dict) -> dict:
    """``FusedMiT`` shape arguments read from NVlabs MiT weights.

    Only parameter shapes matter for the target state, so ``num_heads`` is
    chosen as stage width / first width (the presets' head counts).
    """
    stages = sorted(
        int(m[1]) for m in map(
            re.compile(r'patch_embed(\d+)\.proj\.weight').fullmatch, state)
        if m)
    if not stages:
        raise KeyError('no patch_embed<s>.proj.weight: not a MiT checkpoint')
    dims = [state[f'patch_embed{s}.proj.weight'].shape[0] for s in stages]
    if any(d % dims[0] for d in dims):
        raise ValueError(f'stage widths {dims} are not multiples of the '
                         'first one')
    depths = [
        len({k.split('.')[1]
             for k in state if k.startswith(f'block{s}.')}) for s in stages
    ]
    sr_ratios = [
        state[f'block{s}.0.attn.sr.weight'].shape[-1]
        if f'block{s}.0.attn.sr.weight' in state else 1 for s in stages
    ]
    first = state['patch_embed1.proj.weight']
    return dict(
        in_channels=first.shape[1],
        embed_dims=dims[0],
        num_layers=depths,
        num_heads=[d // dims[0] for d in dims],
        patch_sizes=[
            state[f'patch_embed{s}.proj.weight'].shape[-1] for s in stages
        ],
        sr_ratios=sr_ratios,
        mlp_ratio=state['block1.0.mlp.fc1.weight'].shape[0] // dims[0])


def convert(src: str, dst: str, num_modalities: int, arch=None) -> dict:
    """Convert ``src`` into ``dst``; returns the output's meta."""
    if num_modalities < 1:
        raise ValueError(f'--num-modalities must be >= 1, not '
                         f'{num_modalities}')
    checkpoint = torch.load(src, map_location='cpu', weights_only=False)
    if not isinstance(checkpoint, dict):
        raise TypeError(f'expected a dict, got {type(checkpoint).__name__}')
    state = nvlabs_state(checkpoint, src)
    kwargs = dict(arch=arch) if arch else backbone_kwargs(state)
    # built only for the target names and shapes
    target = FusedMiT(num_modalities=num_modalities, **kwargs).state_dict()
    converted = mit_to_fused(state, target, src)
    missing = [k for k in target if k not in converted]
    if missing:
        raise KeyError(f'the checkpoint lacks {len(missing)} backbone '
                       f'tensors: {missing}')
    meta = dict(
        converted_from=osp.abspath(src),
        converter='tools/model_converters/mit2fusedmit.py',
        num_modalities=num_modalities,
        arch=arch,
        num_tensors=len(converted),
        **{
            k: list(v) if isinstance(v, (list, tuple)) else v
            for k, v in kwargs.items() if k != 'arch'
        })
    if osp.dirname(dst):
        os.makedirs(osp.dirname(dst), exist_ok=True)
    torch.save(dict(state_dict=converted, meta=meta), dst)
    return meta


def main(argv=None):
    args = parse_args(argv)
    try:
        meta = convert(args.src, args.dst, args.num_modalities, args.arch)
    except Exception as exc:  # noqa: BLE001  (any failure names the file)
        raise SystemExit(f'mit2fusedmit.py: cannot convert {args.src}: '
                         f'{type(exc).__name__}: {exc}')
    print(f'Converted {args.src} -> {args.dst}')
    for key, value in meta.items():
        if key not in ('converted_from', 'converter'):
            print(f'  {key}: {value}')
    return meta


if __name__ == '__main__':
    main()
