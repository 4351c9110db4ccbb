"""The real SUN RGB-D frame through the standard tools on CPU, at the real
model sizes: load, augment, project, train one iteration, predict,
evaluate; then the demo script draws the predicted boxes."""
import json
import os.path as osp
import shutil
import sys

import cv2
import numpy as np
import pytest

from .conftest import REPO_ROOT, tool

FIXTURE = osp.join(REPO_ROOT, '..', 'shared', 'fixtures', 'sunrgbd_000017')
FUSION = osp.join(
    REPO_ROOT, 'configs/tokenfusion3d/'
    'tokenfusion3d_groupfree3d-L6-O256_yolos-ti_4xb8-600e_sunrgbd-3d.py')
POINTS_ONLY = osp.join(
    REPO_ROOT,
    'configs/groupfree3d/groupfree3d_head-L6-O256_4xb8-600e_sunrgbd-3d.py')

pytestmark = pytest.mark.skipif(
    not osp.isdir(FIXTURE),
    reason=f'the SUN RGB-D fixture {FIXTURE} is absent')


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


@pytest.fixture(scope='module')
def sunrgbd_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('sunrgbd')
    (root / 'points').mkdir()
    (root / 'sunrgbd_trainval' / 'image').mkdir(parents=True)
    shutil.copy(osp.join(FIXTURE, '000017.bin'), root / 'points')
    shutil.copy(
        osp.join(FIXTURE, '000017.jpg'), root / 'sunrgbd_trainval' / 'image')
    shutil.copy(osp.join(FIXTURE, 'sunrgbd_000017_infos.pkl'), root)
    return root


@pytest.fixture(scope='module')
def trained_fusion(sunrgbd_root):
    work_dir = sunrgbd_root / 'fusion'
    log = tool(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools/train.py'), FUSION, '--work-dir',
            str(work_dir), '--cfg-options', 'model.img_backbone.init_cfg=None'
        ] + fixture_options(sunrgbd_root),
        cwd=sunrgbd_root)
    return log, work_dir / 'epoch_1.pth'


def test_fusion_trains_predicts_and_evaluates(trained_fusion):
    log, checkpoint = trained_fusion
    assert 'Epoch(train) [1][1/1]' in log
    for name in ('img_loss_iou', 'loss_sparsity', 'fusion.visible',
                 's5.center_loss'):
        assert name in log, name
    assert 'mAP_0.25' in log and 'mAP_0.50' in log
    assert osp.isfile(checkpoint)


def test_fusion_checkpoint_tests_with_the_test_tool(trained_fusion,
                                                    sunrgbd_root):
    _, checkpoint = trained_fusion
    metrics = sunrgbd_root / 'metrics.json'
    tool(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools/test.py'), FUSION,
            str(checkpoint), '--work-dir',
            str(sunrgbd_root / 'test'), '--metrics-json',
            str(metrics), '--cfg-options'
        ] + fixture_options(sunrgbd_root),
        cwd=sunrgbd_root)
    values = json.loads(metrics.read_text())
    assert {'mAP_0.25', 'mAP_0.50', 'mAR_0.25'} <= set(values)


def test_points_only_baseline_trains_with_rotated_boxes(sunrgbd_root):
    log = tool(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools/train.py'), POINTS_ONLY, '--work-dir',
            str(sunrgbd_root / 'points_only'), '--cfg-options'
        ] + fixture_options(sunrgbd_root),
        cwd=sunrgbd_root)
    assert 'Epoch(train) [1][1/1]' in log
    assert 'img_loss' not in log and 'mAP_0.25' in log


def test_demo_draws_boxes_on_the_image(trained_fusion, sunrgbd_root):
    sys.path.insert(0, osp.join(REPO_ROOT, 'demo'))
    try:
        import multimodal_3d_demo
    finally:
        sys.path.pop(0)
    _, checkpoint = trained_fusion
    out = sunrgbd_root / 'boxes.png'
    image = osp.join(sunrgbd_root, 'sunrgbd_trainval/image/000017.jpg')
    pred, drawn = multimodal_3d_demo.main([
        osp.join(sunrgbd_root, 'points/000017.bin'), image,
        osp.join(sunrgbd_root, 'sunrgbd_000017_infos.pkl'), FUSION,
        str(checkpoint), '--out-file',
        str(out), '--score-thr', '0'
    ])
    assert len(pred.scores_3d) > 0
    written = cv2.imread(str(out))
    assert written.shape == (530, 730, 3)
    changed = np.any(written != cv2.imread(image), axis=-1)
    assert changed.mean() > 0.001  # box edges were drawn


def test_demo_rejects_bad_calibration(tmp_path):
    sys.path.insert(0, osp.join(REPO_ROOT, 'demo'))
    try:
        import multimodal_3d_demo
    finally:
        sys.path.pop(0)
    calib = tmp_path / 'calib.txt'
    calib.write_text('1 0 0\n0 1 0\n')
    with pytest.raises(ValueError, match='depth2img must be 3x3'):
        multimodal_3d_demo.read_depth2img(str(calib), 'x.jpg')
