"""Convert an official TokenFusion segmentation checkpoint (yikaiw/TokenFusion
``model-best.pth.tar`` / ``checkpoint.pth.tar``) for this repository.

The result ``{'state_dict': ..., 'meta': ...}`` loads into the
``MultiStreamEncoderDecoder`` of a matching config, e.g.::

    python tools/model_converters/tokenfusion2mmseg.py \\
        model-best.pth.tar checkpoints/tokenfusion_mit-b3_nyu.pth
    python tools/test.py \\
        configs/tokenfusion/tokenfusion_mit-b3_3xb2-40k_nyu-rgbd-500x500.py \\
        checkpoints/tokenfusion_mit-b3_nyu.pth

See ``reference_keys.py`` beside this tool for the key mapping; keys that
match no rule are an error, not dropped. :func:`convert_file` and
:func:`run` are shared with ``geminifusion2mmseg.py``.
"""
import argparse
import os
import os.path as osp
import sys
from typing import Callable, Mapping, Optional, Sequence, Tuple

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402

from tools.model_converters.reference_keys import (  # noqa: E402
    convert_tokenfusion_reference, describe_tokenfusion_state)

# training state of the reference Saver kept in the output's meta
_REFERENCE_META = ('epoch_start', 'best_val')
# summary fields printed after a conversion, in this order
SUMMARY_KEYS = ('num_tensors', 'fusion', 'arch', 'num_modalities',
                'num_streams', 'in_channels', 'embed_dims', 'depths',
                'sr_ratios', 'fused_stages', 'fusion_sites', 'fusion_channels',
                'fusion_heads', 'hub_stages', 'head_channels', 'num_classes',
                'alpha', 'ensemble_weights')

# modality names of the official releases, by number of modalities: the
# RGB-D checkpoints (NYUDv2, SUN RGB-D, DeLiVER RGB-D) and DeLiVER's four
DEFAULT_MODALITIES = {
    2: ('rgb', 'depth'),
    4: ('rgb', 'depth', 'event', 'lidar'),
}


def modality_names(
    num_modalities: int,
    given: Optional[Sequence[str]] = None,
    defaults: Mapping[int, Tuple[str, ...]] = DEFAULT_MODALITIES
) -> Tuple[str, ...]:
    """The modality names to record for a model of ``num_modalities``:
    ``given`` (checked against the weights) or the release default of
    ``defaults`` (number of modalities -> names)."""
    if given is None:
        if num_modalities not in defaults:
            raise ValueError(
                f'the weights hold {num_modalities} modalities, for which '
                'no release default exists; name them with --modalities')
        return tuple(defaults[num_modalities])
    if len(given) != num_modalities or len(set(given)) != len(given):
        raise ValueError(
            f'--modalities {" ".join(given)}: expected {num_modalities} '
            'distinct names, as many as the weights hold modalities')
    return tuple(given)


def parse_args(argv=None,
               description='Convert an official TokenFusion '
               'segmentation checkpoint to a MultiStreamEncoderDecoder '
               'checkpoint'):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('src', help='official checkpoint (.pth.tar / .pth)')
    parser.add_argument('dst', help='output checkpoint (.pth)')
    parser.add_argument(
        '--modalities',
        nargs='+',
        help='modality names in the order the model stacks them, recorded '
        'in the output meta (the inferencer checks them against the '
        'config); default: ' +
        ', '.join(f'{m} modalities: {" ".join(n)}'
                  for m, n in DEFAULT_MODALITIES.items()))
    return parser.parse_args(argv)


def _plain(value):
    """Tensors and numpy scalars of the reference meta -> Python numbers, so
    that the output also loads with ``torch.load(weights_only=True)``."""
    if hasattr(value, 'item') and getattr(value, 'ndim', 0) == 0:
        return value.item()
    return value


def convert_file(src: str,
                 dst: str,
                 converter: Callable[[Mapping], dict],
                 tool: str,
                 reference_meta: Sequence[str] = _REFERENCE_META,
                 modalities: Optional[Sequence[str]] = None) -> dict:
    """Convert ``src`` with ``converter`` into ``dst`` (``{'state_dict',
    'meta'}``); returns the meta: the model summary, the modality names
    (``dataset_meta.modalities``, where this repository's training records
    them too; see :func:`modality_names`) and the training state
    ``reference_meta`` of the file."""
    # the references save with pickle (torch < 1.6 era), not weights only
    checkpoint = torch.load(src, map_location='cpu', weights_only=False)
    if not isinstance(checkpoint, dict):
        raise TypeError(f'expected a dict, got {type(checkpoint).__name__}')
    state = converter(checkpoint)
    info = describe_tokenfusion_state(state)
    meta = dict(
        converted_from=osp.abspath(src),
        converter=f'tools/model_converters/{tool}',
        num_tensors=len(state),
        dataset_meta=dict(
            modalities=list(
                modality_names(info['num_modalities'], modalities))),
        **info)
    meta.update(
        {k: _plain(checkpoint[k])
         for k in reference_meta if k in checkpoint})
    if osp.dirname(dst):
        os.makedirs(osp.dirname(dst), exist_ok=True)
    torch.save(dict(state_dict=state, meta=meta), dst)
    return meta


def run(args,
        converter: Callable[[Mapping], dict],
        tool: str,
        reference_meta: Sequence[str] = _REFERENCE_META) -> dict:
    """The CLI: convert, print the summary; any failure exits with a
    message naming the source file."""
    try:
        meta = convert_file(args.src, args.dst, converter, tool,
                            reference_meta, args.modalities)
    except Exception as exc:  # noqa: BLE001  (any failure names the file)
        raise SystemExit(f'{tool}: cannot convert {args.src}: '
                         f'{type(exc).__name__}: {exc}')
    print(f'Converted {args.src} -> {args.dst}')
    print(f'  modalities: {meta["dataset_meta"]["modalities"]}')
    for key in tuple(SUMMARY_KEYS) + tuple(reference_meta):
        if key in meta:
            print(f'  {key}: {meta[key]}')
    return meta


def convert(src: str,
            dst: str,
            modalities: Optional[Sequence[str]] = None) -> dict:
    """Convert ``src`` into ``dst``; returns the summary of the model."""
    return convert_file(
        src,
        dst,
        convert_tokenfusion_reference,
        'tokenfusion2mmseg.py',
        modalities=modalities)


def main(argv: Optional[Sequence[str]] = None):
    return run(
        parse_args(argv), convert_tokenfusion_reference,
        'tokenfusion2mmseg.py')


if __name__ == '__main__':
    main()
