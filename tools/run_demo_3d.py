"""``make demo-3d``: points-only GroupFree3D against TokenFusion (points +
image) on the synthetic indoor scenes, with the standard ``tools/train.py``
/ ``tools/test.py`` on CPU, one table, and both models' boxes drawn on one
validation image.

In the synthetic scenes 'table' and 'desk' share one shape and size
distribution and differ only by their colour in the image, so points alone
cannot tell them apart. Logs, checkpoints and drawings are in
``work_dirs/demo_3d/``.
"""
import argparse
import os
import os.path as osp
import pickle
import sys
import time

import cv2
import numpy as np

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from tools.run_demo import model_dir, train_and_test

POINTS_ONLY = 'GroupFree3D points-only'
FUSION = 'TokenFusion points+image'
DEMO_MODELS = [
    (POINTS_ONLY,
     'configs/groupfree3d/groupfree3d_tiny_1xb8-24e_synthetic-3d.py'),
    (FUSION, 'configs/tokenfusion3d/tokenfusion3d_groupfree3d-tiny_'
     'yolos-tiny_1xb8-24e_synthetic-3d.py'),
]
DATA_ROOT = osp.join(REPO_ROOT, 'data', 'synthetic_indoor')
PAIR = ('table', 'desk')


def format_table(rows):
    header = (f'| {"Model":<28} | mAP@0.25 | mAP@0.5 | '
              f'{PAIR[0]} AP@0.25 | {PAIR[1]} AP@0.25 |')
    lines = [
        header,
        '|' + '|'.join('-' * len(c) for c in header.split('|')[1:-1]) + '|'
    ]
    for name, m in rows:
        lines.append(
            f'| {name:<28} | {100 * m["mAP_0.25"]:8.2f} | '
            f'{100 * m["mAP_0.50"]:7.2f} | '
            f'{100 * m[f"{PAIR[0]}_AP_0.25"]:{len(PAIR[0]) + 8}.2f} | '
            f'{100 * m[f"{PAIR[1]}_AP_0.25"]:{len(PAIR[1]) + 8}.2f} |')
    return '\n'.join(lines)


def titled(image, title):
    bar = np.full((24, image.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, title, (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0),
                1, cv2.LINE_AA)
    return np.vstack([bar, image])


def draw_ground_truth(scene: str):
    """The annotated boxes of a validation scene, drawn as the demo draws
    predictions."""
    from mmdet3d.structures import DepthInstance3DBoxes

    from projects.multimodal_det3d.apis import draw_boxes_3d
    from projects.multimodal_det3d.datasets.synthetic_indoor import (
        SUNRGBD_CLASSES, SYNTHETIC_CLASSES)
    with open(osp.join(DATA_ROOT, 'synthetic_infos_val.pkl'), 'rb') as f:
        entries = pickle.load(f)['data_list']
    entry = next(e for e in entries
                 if e['lidar_points']['lidar_path'] == f'{scene}.bin')
    boxes = DepthInstance3DBoxes(
        np.array([i['bbox_3d'] for i in entry['instances']], np.float32),
        origin=(0.5, 0.5, 0.5))
    # the infos use SUN RGB-D's ids, the demo models the 5 scene classes
    labels = np.array([
        SYNTHETIC_CLASSES.index(SUNRGBD_CLASSES[i['bbox_label_3d']])
        for i in entry['instances']
    ])
    image = cv2.imread(osp.join(DATA_ROOT, 'images', f'{scene}.jpg'))
    depth2img = np.array(entry['images']['CAM0']['depth2img'], np.float32)
    # the synthetic calibration is SUN RGB-D's: MATLAB 1-based pixels
    return draw_boxes_3d(
        image, boxes, labels, SYNTHETIC_CLASSES, depth2img, pixel_origin=1.0)


def draw_scene(work_root, scene: int, score_thr: float):
    """Ground truth and both models' boxes (one per object) on validation
    scene ``scene``, side by side."""
    sys.path.insert(0, osp.join(REPO_ROOT, 'demo'))
    import multimodal_3d_demo
    name = f'{scene:06d}'
    panels = [titled(draw_ground_truth(name), 'ground truth')]
    for row, config in DEMO_MODELS:
        work_dir = model_dir(work_root, row)
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            checkpoint = f.read().strip()
        _, drawn = multimodal_3d_demo.main([
            osp.join(DATA_ROOT, 'points', f'{name}.bin'),
            osp.join(DATA_ROOT, 'images', f'{name}.jpg'),
            osp.join(DATA_ROOT, 'synthetic_infos_val.pkl'), config, checkpoint,
            '--out-file',
            osp.join(work_dir, f'boxes_{name}.png'), '--score-thr',
            str(score_thr), '--agnostic-nms', '0.25'
        ])
        panels.append(titled(drawn, row))
    return np.hstack(panels)


def draw_predictions(work_root, scenes, score_thr: float) -> str:
    """One row per scene: ground truth | points only | points + image."""
    out = osp.join(work_root, 'boxes_validation.png')
    cv2.imwrite(
        out, np.vstack([draw_scene(work_root, s, score_thr) for s in scenes]))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--work-dir',
        default=osp.join(REPO_ROOT, 'work_dirs', 'demo_3d'),
        help='where the models, logs and drawings go')
    parser.add_argument(
        '--scene',
        type=int,
        default=200,
        help='validation scene drawn (file index; validation starts at 200)')
    parser.add_argument('--score-thr', type=float, default=0.3)
    args = parser.parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    start = time.time()
    rows = [(name, train_and_test(name, config, args.work_dir, show=False))
            for name, config in DEMO_MODELS]
    drawing = draw_predictions(args.work_dir, [args.scene], args.score_thr)
    table = format_table(rows)
    print(f'\nSynthetic indoor validation set, 50 scenes '
          f'({time.time() - start:.0f} s):\n')
    print(table)
    print(f'\nPredicted boxes (score >= {args.score_thr}): {drawing}')
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(table + '\n')


if __name__ == '__main__':
    main()
