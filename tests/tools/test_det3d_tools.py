"""The real SUN RGB-D frame (tests/data/sunrgbd_000017) through the
standard tools on CPU.

- At the real model sizes, one training iteration of TokenFusion and of the
  points-only GroupFree3D, with validation: the configs train as written.
- A tiny TokenFusion (the 3D demo's sizes, SUN RGB-D's 10 classes) that
  memorises the frame: ``tools/test.py`` must then find its objects, and
  the demo script must detect them above its default score threshold,
  agree with a direct model call and draw the boxes where they project.
"""
import glob
import importlib
import json
import math
import os.path as osp
import pickle
import sys

import cv2
import numpy as np
import pytest
import torch
from mmdet3d.structures import DepthInstance3DBoxes
from mmdet3d.structures.bbox_3d import points_cam2img

from projects.multimodal_det3d.visualization import tag_rectangle
from ..utils import (DATA_ROOT, REPO_ROOT, dataset_prediction,
                     small_tokenfusion3d_model, sunrgbd_layout, tool)

FIXTURE = osp.join(DATA_ROOT, 'sunrgbd_000017')
FUSION = osp.join(
    REPO_ROOT, 'configs/tokenfusion3d/'
    'tokenfusion3d_groupfree3d-L6-O256_yolos-ti_4xb8-600e_sunrgbd-3d.py')
POINTS_ONLY = osp.join(
    REPO_ROOT,
    'configs/groupfree3d/groupfree3d_head-L6-O256_4xb8-600e_sunrgbd-3d.py')
CLASSES = ('bed', 'table', 'sofa', 'chair', 'toilet', 'desk', 'dresser',
           'night_stand', 'bookshelf', 'bathtub')
# the objects annotated in the frame, in the order of its infos
PRESENT = ('night_stand', 'bed')
# the demo's default --score-thr
DEMO_SCORE_THR = 0.3
# iterations for the tiny model to memorise the frame
MEMORISE_ITERS = 100

# TokenFusion at the 3D demo's sizes (the GroupFree3D of
# _base_/models/groupfree3d_tiny_synthetic.py, a 4-block 64-d YOLOS) on the
# SUN RGB-D config with 2048 points and 128x93 images. No 3D augmentation
# and higher learning rates for the decoder and the image branch, so that
# it memorises the one frame in MEMORISE_ITERS iterations; the
# augmentations are covered by the real-size runs below and by
# tests/multimodal_det3d/test_projection.py.
TINY_FUSION = """
_base_ = [{base!r}]
fixture_data = dict(data_root={root!r}, ann_file='sunrgbd_000017_infos.pkl')
""" + small_tokenfusion3d_model(
    init_pe_size=(96, 128), drop_path_rate=0.0) + """


def shrink(pipeline):
    steps = []
    for step in pipeline:
        step = dict(step)
        # augmentation off, and recorded as off for the projection
        if step['type'] == 'RandomFlip3D':
            step['flip_ratio_bev_horizontal'] = 0.0
        if step['type'] == 'GlobalRotScaleTrans':
            step.update(
                rot_range=[0, 0],
                scale_ratio_range=[1., 1.],
                translation_std=[0, 0, 0])
        if step['type'] == 'PointSample':
            step['num_points'] = 2048
        if step['type'] == 'Resize':
            step['scale'] = (128, 96)
        steps.append(step)
    return steps


loader = dict(batch_size=1, num_workers=0, persistent_workers=False)
train_dataloader = dict(
    **loader,
    dataset=dict(
        _delete_=True,
        type='RepeatDataset',
        times={iters},
        dataset=dict(
            _base_.train_dataloader.dataset,
            pipeline=shrink(_base_.train_pipeline),
            **fixture_data)))
val_dataloader = dict(
    **loader,
    dataset=dict(pipeline=shrink(_base_.test_pipeline), **fixture_data))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=1, val_interval=2)
param_scheduler = []
optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys=dict(
            decoder=dict(lr_mult=0.25),
            img=dict(lr_mult=0.25, decay_mult=1.0))))
default_hooks = dict(logger=dict(interval=10))
randomness = dict(seed=0)
"""


def fixture_options(root):
    """The configs' SUN RGB-D layout, holding the one fixture scan."""
    options = []
    for loader in ('train', 'val', 'test'):
        options += [
            f'{loader}_dataloader.dataset.data_root={root}',
            f'{loader}_dataloader.dataset.ann_file=sunrgbd_000017_infos.pkl',
            f'{loader}_dataloader.batch_size=1',
            f'{loader}_dataloader.num_workers=0',
            f'{loader}_dataloader.persistent_workers=False'
        ]
    return options + [
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
        'default_hooks.logger.interval=1', 'randomness.seed=0'
    ]


def read_scalars(work_dir):
    """The train records (one per iteration) and the val records that
    mmengine wrote to ``<work_dir>/<timestamp>/vis_data/scalars.json``."""
    files = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    assert len(files) == 1, files
    with open(files[0]) as f:
        records = [json.loads(line) for line in f if line.strip()]
    train = [r for r in records if 'loss' in r]
    val = [r for r in records if 'mAP_0.25' in r]
    return train, val


def check_one_frame_metrics(metrics):
    """Metrics of the one-frame set: a number for the two annotated
    classes, NaN for the others (and so for their mean)."""
    for name in CLASSES:
        for key in (f'{name}_AP_0.25', f'{name}_AP_0.50', f'{name}_rec_0.25'):
            if name in PRESENT:
                assert 0 <= metrics[key] <= 1, (key, metrics[key])
            else:
                assert math.isnan(metrics[key]), (key, metrics[key])
    assert math.isnan(metrics['mAP_0.25'])


def ground_truth():
    """The frame's annotated boxes (gravity centres, as mmdet3d's
    SUNRGBDDataset reads them) and labels."""
    with open(osp.join(FIXTURE, 'sunrgbd_000017_infos.pkl'), 'rb') as f:
        info = pickle.load(f)['data_list'][0]
    boxes = DepthInstance3DBoxes(
        torch.tensor([i['bbox_3d'] for i in info['instances']]),
        origin=(0.5, 0.5, 0.5))
    labels = [CLASSES[i['bbox_label_3d']] for i in info['instances']]
    assert tuple(labels) == PRESENT
    return boxes, labels, np.array(info['images']['CAM0']['depth2img'])


def import_demo():
    sys.path.insert(0, osp.join(REPO_ROOT, 'demo'))
    try:
        return importlib.import_module('multimodal_3d_demo')
    finally:
        sys.path.pop(0)


@pytest.fixture(scope='module')
def sunrgbd_root(tmp_path_factory):
    return sunrgbd_layout(tmp_path_factory.mktemp('sunrgbd'))


# ------------------------------------------------------ real model sizes
def test_fusion_config_trains_and_validates(sunrgbd_root):
    work_dir = sunrgbd_root / 'fusion'
    tool(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools/train.py'), FUSION, '--work-dir',
            str(work_dir), '--cfg-options', 'model.img_backbone.init_cfg=None',
            'custom_hooks.1.interval=1'
        ] + fixture_options(sunrgbd_root),
        cwd=sunrgbd_root)
    train, val = read_scalars(work_dir)
    assert len(train) == 1 and len(val) == 1
    losses = {k: v for k, v in train[0].items() if 'loss' in k}
    # the six decoder stages of L6, the 2D DETR losses (before
    # TokenFusion3DHook's img_loss_epochs) and the sparsity term are all
    # trained
    for key in ([f's{i}.center_loss' for i in range(6)] +
                ['img_loss_cls', 'img_loss_bbox', 'img_loss_iou'] +
                ['loss_sparsity']):
        assert key in losses, key
    assert all(math.isfinite(v) for v in losses.values()), losses
    assert losses['img_loss_cls'] > 0 and losses['loss_sparsity'] > 0
    # every point of a SUN RGB-D frame comes from its camera's depth map,
    # so (once the 3D augmentation is undone) nearly every seed must
    # project into the image
    assert train[0]['fusion/visible'] > 0.99, train[0]
    assert 0 <= train[0]['fusion/decoder5/replaced'] <= 1, train[0]
    check_one_frame_metrics(val[0])
    checkpoint = torch.load(
        work_dir / 'epoch_1.pth', map_location='cpu', weights_only=False)
    state = checkpoint['state_dict']
    assert checkpoint['meta']['epoch'] == 1
    # YOLOS-Ti (192-d, 100 [DET] tokens) and the 6 decoder layers of L6
    assert state['img_backbone.det_token'].shape == (1, 100, 192)
    assert any(k.startswith('bbox_head.decoder_layers.5.') for k in state)


def test_points_only_config_trains_without_the_image(sunrgbd_root):
    work_dir = sunrgbd_root / 'points_only'
    tool(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools/train.py'), POINTS_ONLY, '--work-dir',
            str(work_dir), '--cfg-options'
        ] + fixture_options(sunrgbd_root),
        cwd=sunrgbd_root)
    train, val = read_scalars(work_dir)
    assert len(train) == 1 and len(val) == 1
    assert not [k for k in train[0] if k.startswith(('img_', 'fusion.'))]
    losses = {k: v for k, v in train[0].items() if 'loss' in k}
    assert 's5.center_loss' in losses and 'loss_sparsity' not in losses
    assert all(math.isfinite(v) for v in losses.values()), losses
    check_one_frame_metrics(val[0])


# ------------------------------------------- a tiny model, memorised frame
@pytest.fixture(scope='module')
def memorised(sunrgbd_root):
    """(config, checkpoint) of the tiny TokenFusion trained on the frame
    with tools/train.py."""
    config = sunrgbd_root / 'tiny_fusion.py'
    config.write_text(
        TINY_FUSION.format(
            base=FUSION, root=f'{sunrgbd_root}/', iters=MEMORISE_ITERS))
    work_dir = sunrgbd_root / 'tiny'
    train_tool = osp.join(REPO_ROOT, 'tools/train.py')
    # the longest training of the suite: beside three other trainings on 2
    # cores it ran past the default 300 s
    tool(
        [sys.executable, train_tool,
         str(config), '--work-dir',
         str(work_dir)],
        cwd=sunrgbd_root,
        timeout=900)
    train, _ = read_scalars(work_dir)
    assert len(train) == MEMORISE_ITERS // 10
    # memorising: the loss went well down
    assert train[-1]['loss'] < 0.7 * train[0]['loss'], (train[0], train[-1])
    return str(config), str(work_dir / 'epoch_1.pth')


def test_test_tool_finds_the_memorised_objects(memorised, sunrgbd_root):
    config, checkpoint = memorised
    metrics_file = sunrgbd_root / 'tiny_metrics.json'
    args = [
        sys.executable,
        osp.join(REPO_ROOT, 'tools/test.py'), config, checkpoint, '--work-dir',
        str(sunrgbd_root / 'tiny_test'), '--metrics-json',
        str(metrics_file)
    ]
    tool(args, cwd=sunrgbd_root)
    metrics = json.loads(metrics_file.read_text())
    check_one_frame_metrics(metrics)
    # the highest-scoring bed overlaps the bed by 3D IoU >= 0.25 (the small
    # night stand is not reliably found after so few iterations)
    assert metrics['bed_AP_0.25'] == 1.0, metrics
    assert metrics['bed_rec_0.25'] == 1.0, metrics


def direct_prediction(config, checkpoint, root):
    """The model on the frame as the config's test dataset loads it, with
    PointSample seeded as the demo seeds it."""
    from mmdet3d.apis import init_model

    model = init_model(config, checkpoint, device='cpu')
    sample = dataset_prediction(model, model.cfg.test_dataloader.dataset)
    assert osp.samefile(sample.metainfo['img_path'],
                        osp.join(root, 'sunrgbd_trainval/image/000017.jpg'))
    return sample.pred_instances_3d


def box_edges(corners):
    """The 12 (i, j) corner pairs of a box's edges, from its geometry (an
    upright box, as all depth-frame boxes): the 4 bottom and the 4 top
    corners each form a rectangle, whose sides join each corner to its two
    nearest (the diagonal is longer); vertical edges join corners with the
    same x, y."""
    bottom = (corners[:, 2] < corners[:, 2].mean()).nonzero()[:, 0]
    top = (corners[:, 2] >= corners[:, 2].mean()).nonzero()[:, 0]
    assert len(bottom) == len(top) == 4
    edges = set()
    for face in (bottom, top):
        for i in face.tolist():
            others = [j for j in face.tolist() if j != i]
            dist = (corners[others] - corners[i]).norm(dim=1)
            for k in dist.argsort()[:2].tolist():
                edges.add(tuple(sorted((i, others[k]))))
    for i in bottom.tolist():
        xy_dist = (corners[top, :2] - corners[i, :2]).norm(dim=1)
        edges.add(tuple(sorted((i, int(top[xy_dist.argmin()])))))
    assert len(edges) == 12, edges
    return sorted(edges)


def check_drawing(drawn, image, pred, depth2img):
    """Changed pixels lie on the boxes' projected edges (mmdet3d's
    projection, SUN RGB-D's 1-based pixels), and the edges were drawn."""
    assert drawn.shape == image.shape == (530, 730, 3)
    changed = np.any(drawn != image, axis=-1)
    height, width = changed.shape
    near_edges = np.zeros_like(changed, np.uint8)
    tag_area = 0
    for k in range(len(pred)):
        corners = pred.bboxes_3d.corners[k]
        uvd = points_cam2img(
            corners.double(),
            torch.as_tensor(depth2img, dtype=torch.float64),
            with_depth=True)
        assert (uvd[:, 2] > 0.1).all(), 'a predicted box is behind the camera'
        uv = uvd[:, :2].numpy() - 1
        drawn_samples = 0
        inside_samples = 0
        for i, j in box_edges(corners):
            cv2.line(near_edges, tuple(int(round(v)) for v in uv[i]),
                     tuple(int(round(v)) for v in uv[j]), 1, 5)
            length = np.linalg.norm(uv[j] - uv[i])
            for t in np.linspace(0, 1, max(int(length), 2)):
                u, v = np.round(uv[i] + t * (uv[j] - uv[i])).astype(int)
                if 1 <= u < width - 1 and 1 <= v < height - 1:
                    inside_samples += 1
                    drawn_samples += changed[v - 1:v + 2, u - 1:u + 2].any()
        assert inside_samples > 50, f'box {k} is hardly in the image'
        assert drawn_samples >= 0.9 * inside_samples, (
            f'box {k}: {drawn_samples} of {inside_samples} points of its '
            'projected edges were drawn')
        text = f'{CLASSES[int(pred.labels_3d[k])]} {pred.scores_3d[k]:.2f}'
        x1, y1, x2, y2 = tag_rectangle((0, height), text, image.shape)
        tag_area += (x2 - x1 + 1) * (y2 - y1 + 1)
    # what is drawn away from the edges is at most the class / score tags
    stray = changed & (near_edges == 0)
    assert stray.sum() <= tag_area, (stray.sum(), tag_area)


def test_demo_detects_and_draws_the_memorised_objects(memorised, sunrgbd_root):
    demo = import_demo()
    config, checkpoint = memorised
    out = sunrgbd_root / 'boxes.png'
    image_file = osp.join(sunrgbd_root, 'sunrgbd_trainval/image/000017.jpg')
    pred, drawn = demo.main([
        osp.join(sunrgbd_root, 'points/000017.bin'), image_file,
        osp.join(sunrgbd_root, 'sunrgbd_000017_infos.pkl'), config, checkpoint,
        '--out-file',
        str(out)
    ])
    # the default threshold keeps boxes, and the best one is the bed
    assert len(pred) > 0
    assert (pred.scores_3d >= DEMO_SCORE_THR).all()
    gt_boxes, gt_labels, depth2img = ground_truth()
    best = int(pred.scores_3d.argmax())
    assert CLASSES[int(pred.labels_3d[best])] == 'bed'
    iou = DepthInstance3DBoxes.overlaps(pred.bboxes_3d, gt_boxes)
    assert iou[best, gt_labels.index('bed')] >= 0.25, iou

    # the demo's own loading (calibration from the .pkl, image, points)
    # gives what the config's dataset gives
    direct = direct_prediction(config, checkpoint, sunrgbd_root)
    direct = direct[direct.scores_3d >= DEMO_SCORE_THR]
    assert len(direct) == len(pred)
    assert torch.equal(direct.labels_3d, pred.labels_3d)
    assert torch.allclose(direct.scores_3d, pred.scores_3d, atol=1e-5)
    assert torch.allclose(
        direct.bboxes_3d.tensor, pred.bboxes_3d.tensor, atol=1e-4)

    image = cv2.imread(image_file)
    assert np.array_equal(cv2.imread(str(out)), drawn)
    check_drawing(drawn, image, pred, depth2img)


def test_demo_agnostic_nms_keeps_one_box_per_object(memorised, sunrgbd_root):
    demo = import_demo()
    config, checkpoint = memorised
    args = [
        osp.join(sunrgbd_root, 'points/000017.bin'),
        osp.join(sunrgbd_root, 'sunrgbd_trainval/image/000017.jpg'),
        osp.join(sunrgbd_root, 'sunrgbd_000017_infos.pkl'), config, checkpoint,
        '--out-file',
        str(sunrgbd_root / 'nms.png'), '--score-thr', '0.0'
    ]
    every, _ = demo.main(args)
    kept, _ = demo.main(args + ['--agnostic-nms', '0.25'])
    assert 0 < len(kept) < len(every)
    # kept boxes are predictions, the best one among them
    # exact distances (cdist's matrix-product path, taken for more than 25
    # boxes, is off by ~1e-3)
    matches = torch.cdist(
        kept.bboxes_3d.tensor,
        every.bboxes_3d.tensor,
        compute_mode='donot_use_mm_for_euclid_dist')
    assert (matches.min(1).values < 1e-6).all()
    assert kept.scores_3d.max() == every.scores_3d.max()
    # no two kept boxes overlap by more than the NMS threshold (axis-aligned
    # extents of the corners, as the demo's NMS compares them)
    corners = kept.bboxes_3d.corners
    low, high = corners.min(1).values, corners.max(1).values
    inter = (torch.minimum(high[:, None], high[None]) -
             torch.maximum(low[:, None], low[None])).clamp(min=0).prod(-1)
    volume = (high - low).prod(-1)
    iou = inter / (volume[:, None] + volume[None] - inter)
    iou.fill_diagonal_(0)
    assert (iou <= 0.25 + 1e-6).all(), iou


def test_demo_reads_a_depth2img_text_file(memorised, sunrgbd_root, tmp_path):
    """CALIB as a text file: the info file's matrix gives the info file's
    boxes; a matrix of the wrong shape is an error naming the file."""
    demo = import_demo()
    config, checkpoint = memorised
    _, _, depth2img = ground_truth()
    calib = tmp_path / 'depth2img.txt'
    np.savetxt(calib, depth2img)
    scan = [
        osp.join(sunrgbd_root, 'points/000017.bin'),
        osp.join(sunrgbd_root, 'sunrgbd_trainval/image/000017.jpg')
    ]
    options = [config, checkpoint, '--out-file', str(tmp_path / 'b.png')]
    from_text, _ = demo.main(scan + [str(calib)] + options)
    from_infos, _ = demo.main(
        scan + [osp.join(sunrgbd_root, 'sunrgbd_000017_infos.pkl')] + options)
    assert len(from_text) == len(from_infos) > 0
    assert torch.allclose(from_text.bboxes_3d.tensor,
                          from_infos.bboxes_3d.tensor)
    calib.write_text('1 0 0\n0 1 0\n')
    with pytest.raises(ValueError, match='depth2img.txt.*must be 3x3'):
        demo.main(scan + [str(calib)] + options)


# ------------------------------------------------------- make demo-3d
def test_demo_3d_seeds_table_and_drawing(tmp_path, monkeypatch):
    """tools/run_demo_3d.py (make demo-3d) trains every chosen model with
    every seed, reports mean ± std over seeds and the replaced fractions,
    and passes --scene on to the drawing (training, statistics and drawing
    replaced by fixed values)."""
    run_demo_3d = importlib.import_module('tools.run_demo_3d')
    classes = run_demo_3d.CLASSES
    trained, drawn = [], []

    def fake_train(name, config, work_dir, show, seed, threads, options):
        trained.append((name, seed))
        value = 0.5 + 0.1 * seed  # seeds 0 and 2: 50 and 70, std 14.14
        metrics = {'mAP_0.25': value, 'mAP_0.50': value / 2}
        metrics.update({f'{c}_AP_0.25': value for c in classes})
        run_dir = tmp_path / run_demo_3d.model_dir('', name)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / 'last_checkpoint').write_text('epoch_24.pth')
        return metrics

    def fake_statistics(key, checkpoint, out, threads):
        groups = list(run_demo_3d.GROUPS) + ['all']
        return {
            'decoder0': {
                g: dict(replaced=0.25)
                for g in groups
            },
            'decoder1': {
                g: dict(replaced=0.75)
                for g in groups
            }
        }

    monkeypatch.setattr(run_demo_3d, 'train_and_test', fake_train)
    monkeypatch.setattr(run_demo_3d, 'replacement_statistics', fake_statistics)
    monkeypatch.setattr(
        run_demo_3d, 'draw_predictions',
        lambda work_dir, scenes, score_thr, seed: drawn.append(
            (scenes, score_thr, seed)) or str(tmp_path / 'boxes.png'))
    run_demo_3d.main(
        ['--work-dir',
         str(tmp_path), '--scene', '207', '--seeds', '0', '2'])
    models = run_demo_3d.HEADLINE
    assert trained == [(run_demo_3d.run_name(key, seed), seed)
                       for seed in (0, 2) for key in models]
    assert drawn == [([207], 0.3, 0)]
    report = (tmp_path / 'results.md').read_text()
    lines = report.splitlines()
    header = lines.index(next(line for line in lines if '| Model |' in line))
    for line, key in zip(lines[header + 2:], models):
        assert line.startswith(f'| {run_demo_3d.MODELS[key][0]} |')
        cells = [cell.strip() for cell in line.split('|')[2:-1]]
        assert cells[0] == '60.00 ± 14.14' and cells[1] == '30.00 ± 7.07'
        assert len(cells) == 2 + len(classes)
    # the fusion models' replaced fractions, per layer
    fused = run_demo_3d.MODELS[models[1]][0]
    assert f'| {fused} | decoder1 | 75.00 ± 0.00' in report
    assert 'GroupFree3D points-only | decoder' not in report
    with pytest.raises(SystemExit, match='unknown'):
        run_demo_3d.main(['--models', 'faithfull'])
