"""Segment your own RGB + depth (+ more modalities) with a trained model.

    python demo/multimodal_seg_demo.py RGB DEPTH CONFIG CHECKPOINT \
        --out-dir OUT [--modality event=PATH ...] [--fusion-maps] \
        [--device cpu] [--batch-size 4] [--opacity 0.8]

RGB, DEPTH and every ``--modality name=PATH`` are files of one sample or
folders of several, paired by file stem (``rgb/0001.png`` with
``depth/0001.png``); ``-`` leaves RGB or DEPTH out, for models without it
(e.g. a depth-only baseline: ``- depth.png``). CONFIG is a config file or a
config name under ``configs/``. The modalities given must be exactly the
model's. Outputs in OUT, per sample: ``vis/`` (input | modalities |
prediction), ``pred/`` (class indices of the ensemble and of each stream),
``mask/`` (the same in the palette's colours) and, with ``--fusion-maps``
(TokenFusion models), ``fusion/`` (the tokens each modality took from the
others). See docs/inference.md.
"""
import argparse
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import numpy as np  # noqa: E402

from projects.multimodal_seg.apis import MultiModalSegInferencer  # noqa: E402


def parse_modality(text: str):
    name, sep, path = text.partition('=')
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(
            f'--modality {text!r}: expected NAME=PATH, e.g. event=ev.png')
    return name, path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Segment your own multimodal images with a trained model')
    parser.add_argument('rgb', help='RGB file or folder ("-": none)')
    parser.add_argument('depth', help='depth file or folder ("-": none)')
    parser.add_argument('config', help='config file or config name')
    parser.add_argument('checkpoint', help='trained or converted checkpoint')
    parser.add_argument(
        '--modality',
        type=parse_modality,
        action='append',
        default=[],
        metavar='NAME=PATH',
        help='another modality (file or folder), repeat for several')
    parser.add_argument('--out-dir', required=True, help='output folder')
    parser.add_argument(
        '--fusion-maps',
        action='store_true',
        help='also draw the tokens each modality took from the others '
        '(TokenFusion models)')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument(
        '--opacity', type=float, default=0.8, help='of the drawn prediction')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    inputs = {
        name: path
        for name, path in (('rgb', args.rgb), ('depth', args.depth))
        if path != '-'
    }
    for name, path in args.modality:
        if name in inputs:
            raise SystemExit(f'modality {name!r} is given twice')
        inputs[name] = path
    inferencer = MultiModalSegInferencer(
        args.config, weights=args.checkpoint, device=args.device)
    result = inferencer(
        inputs,
        batch_size=args.batch_size,
        out_dir=args.out_dir,
        opacity=args.opacity,
        fusion_maps=args.fusion_maps)
    predictions = result['predictions']
    if isinstance(predictions, np.ndarray):
        predictions = [predictions]
    print(f'{len(predictions)} sample(s) segmented into {args.out_dir} '
          '(vis/, pred/, mask/' + (', fusion/' if args.fusion_maps else '') +
          ')')
    return result


if __name__ == '__main__':
    main()
