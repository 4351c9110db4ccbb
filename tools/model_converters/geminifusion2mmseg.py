"""Convert an official GeminiFusion segmentation checkpoint
(JiaDingCN/GeminiFusion) for this repository.

Accepted: main-branch MiT files (``mit-b3.pth.tar`` / ``mit_b5.pth.tar``:
``{'segmenter', 'epoch_start', 'best_val'}``, ``module.`` prefix) and
DeLiVER-branch MiT files (``geminifusion_b2_deliver_*.pth``: a plain state
dict; ``*_checkpoint.pth``: under ``'model_state_dict'``), and main-branch
Swin files (``swin_*.pth.tar``, ``encoder.body.*`` keys) for
``FusedSwin`` configs.

The result ``{'state_dict': ..., 'meta': ...}`` loads into the
``MultiStreamEncoderDecoder`` with a ``FusedMiT`` (or ``FusedSwin``) whose
fusion layer is a ``GeminiFusion`` of a matching config, e.g.::

    python tools/model_converters/geminifusion2mmseg.py \\
        mit-b3.pth.tar checkpoints/geminifusion_mit-b3_nyu.pth
    python tools/test.py \\
        configs/geminifusion/\\
geminifusion_mit-b3_3xb2-40k_nyu-rgbd-480x640.py \\
        checkpoints/geminifusion_mit-b3_nyu.pth

The fusion heads are not stored in the weights: the config's
``backbone.fusion.heads`` (reference: 8) must be the one of the training.
See ``reference_keys.py`` (MiT) and ``swin_reference_keys.py`` (Swin)
beside this tool for the key mapping; keys that match no rule are an error,
not dropped.
"""
import os.path as osp
import sys
from collections import OrderedDict
from typing import Mapping, Optional, Sequence

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from tools.model_converters.reference_keys import (  # noqa: E402
    convert_geminifusion_mit_reference, is_swin_reference,
    reference_state_dict)
from tools.model_converters.swin_reference_keys import \
    convert_geminifusion_swin_reference  # noqa: E402
from tools.model_converters.tokenfusion2mmseg import (  # noqa: E402
    convert_file, parse_args, run)

TOOL = 'geminifusion2mmseg.py'
# training state kept in the output's meta: main branch (Saver) and
# DeLiVER branch (*_checkpoint.pth)
REFERENCE_META = ('epoch_start', 'best_val', 'epoch', 'best_miou')


def convert_geminifusion_reference(checkpoint: Mapping) -> OrderedDict:
    """Convert an official GeminiFusion segmentation checkpoint.

    Args:
        checkpoint (Mapping): A main-branch file (``{'segmenter': ...,
            'epoch_start', 'best_val'}``, ``module.`` prefix), a
            DeLiVER-branch state dict (``backbone.`` / ``decode_head.`` /
            ``alpha``) or its ``*_checkpoint.pth`` wrapper
            (``'model_state_dict'``).

    Returns:
        OrderedDict: The state dict of the matching
        :class:`MultiStreamEncoderDecoder`: a Swin model (``encoder.body.*``
        keys) by :func:`convert_geminifusion_swin_reference`, a MiT model
        by :func:`convert_geminifusion_mit_reference`.
    """
    state = reference_state_dict(checkpoint, 'GeminiFusion')
    if is_swin_reference(state):
        return convert_geminifusion_swin_reference(state)
    return convert_geminifusion_mit_reference(state)


def convert(src: str,
            dst: str,
            modalities: Optional[Sequence[str]] = None) -> dict:
    """Convert ``src`` into ``dst``; returns the summary of the model."""
    return convert_file(src, dst, convert_geminifusion_reference, TOOL,
                        REFERENCE_META, modalities)


def main(argv: Optional[Sequence[str]] = None):
    args = parse_args(
        argv, 'Convert an official GeminiFusion (MiT or Swin) segmentation '
        'checkpoint to a MultiStreamEncoderDecoder checkpoint')
    return run(args, convert_geminifusion_reference, TOOL, REFERENCE_META)


if __name__ == '__main__':
    main()
