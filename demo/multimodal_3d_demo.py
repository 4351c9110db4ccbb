"""Detect 3D boxes in one scan (points + image + calibration) and draw them
on the image: a command line over
:class:`projects.multimodal_det3d.apis.TokenFusion3DInferencer`.

    python demo/multimodal_3d_demo.py POINTS.bin IMAGE.jpg CALIB CONFIG \
        CHECKPOINT --out-file boxes.png [--score-thr 0.3] [--agnostic-nms 0.25]

``CALIB`` is an mmdet3d info file (``.pkl``: the ``images.CAM0.depth2img``
of the entry whose image has IMAGE's file name; ``--cam-type`` for another
camera) or a text file with the ``depth2img`` matrix (SUN RGB-D's MATLAB
1-based pixel convention, as mmdet3d's converter writes it). Points are
float32 records of the config's ``LoadPointsFromFile.load_dim`` values
(x, y, z, r, g, b for SUN RGB-D) in upright depth coordinates.
Points-only configs work too (the image is then only drawn on). Scans with
posed views (ScanNet) go through the inferencer's Python API (see
docs/tokenfusion_3d.md).
"""
import argparse
import os.path as osp
import sys

import cv2

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from projects.multimodal_det3d.apis import (TokenFusion3DInferencer,
                                            select_boxes)


def scan_input(points: str, image: str, calib: str) -> dict:
    """The inferencer's input for one scan: ``infos`` for an info file,
    ``depth2img`` for a text file holding the matrix."""
    key = 'infos' if calib.endswith('.pkl') else 'depth2img'
    return {'points': points, 'img': image, key: calib}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('points', help='float32 point records (.bin)')
    parser.add_argument('image', help='RGB image of the scan')
    parser.add_argument('calib', help='info .pkl or depth2img .txt')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out-file', default='boxes_3d.png')
    parser.add_argument('--score-thr', type=float, default=0.3)
    parser.add_argument(
        '--agnostic-nms',
        type=float,
        default=None,
        metavar='IOU',
        help='draw one box per object: class-agnostic NMS at this 3D IoU')
    parser.add_argument(
        '--cam-type',
        default=None,
        help="camera of the info file's entries (default CAM0, SUN RGB-D)")
    parser.add_argument('--device', default='cpu')
    return parser.parse_args(argv)


def main(argv=None):
    """Returns the boxes drawn (score >= --score-thr, after --agnostic-nms)
    and the drawing (BGR)."""
    args = parse_args(argv)
    inferencer = TokenFusion3DInferencer(
        args.config,
        weights=args.checkpoint,
        device=args.device,
        show_progress=False)
    result = inferencer(
        scan_input(args.points, args.image, args.calib),
        return_datasamples=True,
        return_vis=True,
        cam_type=args.cam_type,
        pred_score_thr=args.score_thr,
        agnostic_nms=args.agnostic_nms)
    # the boxes the inferencer drew, by the same selection
    pred = select_boxes(result['predictions'][0].pred_instances_3d,
                        args.score_thr, args.agnostic_nms)
    drawn = result['visualization'][0]
    if not cv2.imwrite(args.out_file, drawn):
        raise OSError(f'cannot write {args.out_file}')
    print(f'{len(pred)} boxes with score >= {args.score_thr} drawn on '
          f'{args.out_file}')
    return pred, drawn


if __name__ == '__main__':
    main()
