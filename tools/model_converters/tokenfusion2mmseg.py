"""Convert an official TokenFusion segmentation checkpoint (yikaiw/TokenFusion
``model-best.pth.tar`` / ``checkpoint.pth.tar``) for this repository.

The result ``{'state_dict': ..., 'meta': ...}`` loads into the
``TokenFusionEncoderDecoder`` of a matching config, e.g.::

    python tools/model_converters/tokenfusion2mmseg.py \\
        model-best.pth.tar checkpoints/tokenfusion_mit-b3_nyu.pth
    python tools/test.py \\
        configs/tokenfusion/tokenfusion_mit-b3_3xb2-40k_nyu-rgbd-500x500.py \\
        checkpoints/tokenfusion_mit-b3_nyu.pth

See ``projects/tokenfusion/models/reference_checkpoint.py`` for the key
mapping. Keys that match no mapping rule are an error, not dropped.
"""
import argparse
import os
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402

from projects.tokenfusion.models.reference_checkpoint import (  # noqa: E402
    convert_tokenfusion_reference, describe_tokenfusion_state)

# training state of the reference Saver kept in the output's meta
_REFERENCE_META = ('epoch_start', 'best_val')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert an official TokenFusion segmentation '
        'checkpoint to a TokenFusionEncoderDecoder checkpoint')
    parser.add_argument('src', help='official checkpoint (.pth.tar)')
    parser.add_argument('dst', help='output checkpoint (.pth)')
    return parser.parse_args(argv)


def _plain(value):
    """Tensors and numpy scalars of the reference meta -> Python numbers, so
    that the output also loads with ``torch.load(weights_only=True)``."""
    if hasattr(value, 'item') and getattr(value, 'ndim', 0) == 0:
        return value.item()
    return value


def convert(src: str, dst: str) -> dict:
    """Convert ``src`` into ``dst``; returns the summary of the model."""
    # the reference saves with pickle (torch < 1.6 era), not weights only
    checkpoint = torch.load(src, map_location='cpu', weights_only=False)
    if not isinstance(checkpoint, dict):
        raise TypeError(f'expected a dict, got {type(checkpoint).__name__}')
    state = convert_tokenfusion_reference(checkpoint)
    info = describe_tokenfusion_state(state)
    meta = dict(
        converted_from=osp.abspath(src),
        converter='tools/model_converters/tokenfusion2mmseg.py',
        num_tensors=len(state),
        **info)
    meta.update(
        {k: _plain(checkpoint[k])
         for k in _REFERENCE_META if k in checkpoint})
    if osp.dirname(dst):
        os.makedirs(osp.dirname(dst), exist_ok=True)
    torch.save(dict(state_dict=state, meta=meta), dst)
    return meta


def main(argv=None):
    args = parse_args(argv)
    try:
        meta = convert(args.src, args.dst)
    except Exception as exc:  # noqa: BLE001  (any failure names the file)
        raise SystemExit(f'tokenfusion2mmseg.py: cannot convert {args.src}: '
                         f'{type(exc).__name__}: {exc}')
    print(f'Converted {args.src} -> {args.dst}')
    for key in ('num_tensors', 'arch', 'num_modalities', 'in_channels',
                'embed_dims', 'depths', 'sr_ratios', 'fused_stages',
                'head_channels', 'num_classes', 'alpha',
                'ensemble_weights') + _REFERENCE_META:
        if key in meta:
            print(f'  {key}: {meta[key]}')
    return meta


if __name__ == '__main__':
    main()
