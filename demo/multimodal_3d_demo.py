"""Detect 3D boxes in one scan (points + image + calibration) and draw them
on the image.

    python demo/multimodal_3d_demo.py POINTS.bin IMAGE.jpg CALIB CONFIG \
        CHECKPOINT --out-file boxes.png [--score-thr 0.3] [--agnostic-nms 0.25]

``CALIB`` is an mmdet3d SUN RGB-D info file (``images.CAM0.depth2img`` of
the entry whose image has IMAGE's file name, or of its only entry) or a text
file with the 3x3 ``depth2img`` matrix (SUN RGB-D's MATLAB 1-based pixel
convention, as mmdet3d's converter writes it). Points are float32
x, y, z, r, g, b in upright depth coordinates. Points-only configs work too
(the image is then only drawn on).
"""
import argparse
import os.path as osp
import pickle
import sys

import cv2
import numpy as np
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from mmdet3d.apis import init_model
from mmdet3d.models.layers import aligned_3d_nms
from mmdet3d.structures import Box3DMode, DepthInstance3DBoxes, Det3DDataSample
from mmengine.dataset import Compose, pseudo_collate

from projects.multimodal_det3d.models.fusion_layers.projection import \
    project_points
from projects.multimodal_det3d.visualization import draw_projected_boxes


def read_depth2img(calib: str, image: str) -> np.ndarray:
    """The (3, 3) depth2img of IMAGE from an info .pkl or a text file."""
    if calib.endswith('.pkl'):
        with open(calib, 'rb') as f:
            infos = pickle.load(f)
        entries = infos['data_list'] if isinstance(infos, dict) else infos
        name = osp.basename(image)
        matches = [
            e for e in entries
            if osp.basename(e['images']['CAM0']['img_path']) == name
        ]
        if not matches and len(entries) == 1:
            matches = entries
        if len(matches) != 1:
            raise ValueError(f'{calib}: no single entry for image {name} '
                             f'({len(matches)} of {len(entries)} match)')
        matrix = matches[0]['images']['CAM0'].get('depth2img')
        if matrix is None:
            raise KeyError(f'{calib}: the entry of {name} has no '
                           'images.CAM0.depth2img')
    else:
        matrix = np.loadtxt(calib)
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.shape != (3, 3):
        raise ValueError(f'{calib}: depth2img must be 3x3, got '
                         f'{matrix.shape}')
    return matrix


def detect(model, points_file: str, image_file: str, depth2img: np.ndarray):
    """Run the config's test pipeline and the model on one scan."""
    cfg = model.cfg
    pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
    points = np.fromfile(points_file, dtype=np.float32)
    if points.size == 0 or points.size % 6:
        raise ValueError(f'{points_file}: expected float32 x, y, z, r, g, b '
                         f'records, got {points.size} values')
    data = dict(
        lidar_points=dict(lidar_path=points_file, num_pts_feats=6),
        img_path=image_file,
        depth2img=depth2img,
        box_type_3d=DepthInstance3DBoxes,
        box_mode_3d=Box3DMode.DEPTH,
        sample_idx=0)
    # PointSample draws at random: the same drawing on every run
    np.random.seed(0)
    batch = pseudo_collate([pipeline(data)])
    with torch.no_grad():
        result = model.test_step(batch)[0]
    assert isinstance(result, Det3DDataSample)
    return result.pred_instances_3d


def one_box_per_object(boxes: DepthInstance3DBoxes, scores: torch.Tensor,
                       iou_thr: float) -> torch.Tensor:
    """Indices kept by class-agnostic NMS on axis-aligned extents: the
    detector's per-class NMS leaves one box per class on an object, which
    clutters a drawing."""
    corners = boxes.corners
    extents = torch.cat([corners.min(1)[0], corners.max(1)[0]], dim=1)
    return aligned_3d_nms(extents, scores, scores.new_zeros(len(scores)),
                          iou_thr)


def draw(image: np.ndarray, boxes: DepthInstance3DBoxes, labels, scores,
         depth2img: np.ndarray, class_names) -> np.ndarray:
    corners = boxes.corners.reshape(-1, 3)
    uv, depth = project_points(corners, torch.from_numpy(depth2img))
    uv = (uv - 1).reshape(-1, 8, 2).numpy()  # MATLAB 1-based -> 0-based
    valid = (depth > 1e-3).reshape(-1, 8).numpy()
    return draw_projected_boxes(image, uv, valid, labels, class_names, scores)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('points', help='float32 xyzrgb .bin')
    parser.add_argument('image', help='RGB image of the scan')
    parser.add_argument('calib', help='info .pkl or 3x3 depth2img .txt')
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
    parser.add_argument('--device', default='cpu')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    for path in (args.points, args.image, args.calib):
        if not osp.isfile(path):
            raise FileNotFoundError(path)
    image = cv2.imread(args.image)
    if image is None:
        raise ValueError(f'{args.image}: not a readable image')
    depth2img = read_depth2img(args.calib, args.image)
    model = init_model(args.config, args.checkpoint, device=args.device)
    pred = detect(model, args.points, args.image, depth2img)
    pred = pred.cpu()
    pred = pred[pred.scores_3d >= args.score_thr]
    if args.agnostic_nms is not None and len(pred):
        pred = pred[one_box_per_object(pred.bboxes_3d, pred.scores_3d,
                                       args.agnostic_nms)]
    class_names = model.dataset_meta['classes']
    drawn = draw(image, pred.bboxes_3d, pred.labels_3d.numpy(),
                 pred.scores_3d.numpy(), depth2img, class_names)
    cv2.imwrite(args.out_file, drawn)
    print(f'{len(pred)} boxes with score >= {args.score_thr} drawn on '
          f'{args.out_file}')
    return pred, drawn


if __name__ == '__main__':
    main()
