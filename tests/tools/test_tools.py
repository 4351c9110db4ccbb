"""The standard tools end to end on a tiny synthetic set, for a SegFormer
baseline and TokenFusion: train -> resume -> train on -> test (torch >= 2.6
checkpoint loading), load_from, the --show-dir panels, and DDP with 2 CPU
processes through dist_train.sh."""
import glob
import json
import os
import os.path as osp
import pickle
import random
import re
import sys

import cv2
import pytest
import torch
from mmengine.config import Config

from ..utils import REPO_ROOT, tiny_options, tool

CONFIG = osp.join(
    REPO_ROOT, 'configs/segformer/'
    'segformer_mit-tiny-concat_1xb8-1k_synthetic-rgbd-64x64.py')
TOKENFUSION_CONFIG = osp.join(
    REPO_ROOT, 'configs/tokenfusion/'
    'tokenfusion_mit-tiny_1xb8-1k_synthetic-rgbd-64x64.py')


@pytest.fixture(
    scope='module',
    params=[CONFIG, TOKENFUSION_CONFIG],
    ids=['segformer', 'tokenfusion'])
def trained(request, tmp_path_factory):
    """Train 2 iterations, then resume and train on to 4 (from another
    working directory than the repo)."""
    config = request.param
    tmp = tmp_path_factory.mktemp('tools')
    data_root = str(tmp / 'synthetic')
    work_dir = str(tmp / 'work')
    train = [sys.executable, osp.join(REPO_ROOT, 'tools/train.py'), config]
    first = tool(
        train + ['--work-dir', work_dir, '--cfg-options'] +
        tiny_options(data_root, 2),
        cwd=tmp)
    resumed = tool(
        train + ['--work-dir', work_dir, '--resume', '--cfg-options'] +
        tiny_options(data_root, 4),
        cwd=tmp)
    return dict(
        config=config,
        tmp=tmp,
        data_root=data_root,
        work_dir=work_dir,
        first=first,
        resumed=resumed)


def test_train_resume_train_on(trained):
    work_dir = trained['work_dir']
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))
    assert 'Iter(train) [2/2]' in trained['first']
    # torch >= 2.6 refuses this file with its default weights_only=True:
    # the compat loader of projects/mmengine_compat.py is what makes the
    # resume below work.
    with pytest.raises(pickle.UnpicklingError):
        torch.load(osp.join(work_dir, 'iter_2.pth'))
    log = trained['resumed']
    assert 'resumed epoch: 0, iter: 2' in log
    assert 'Iter(train) [3/4]' in log and 'Iter(train) [1/4]' not in log
    checkpoint = torch.load(
        osp.join(work_dir, 'iter_4.pth'), weights_only=False)
    assert checkpoint['meta']['iter'] == 4
    assert 'optimizer' in checkpoint


def test_test_tool_metrics_and_panels(trained):
    metrics_file = osp.join(trained['tmp'], 'metrics.json')
    show_dir = osp.join(trained['tmp'], 'panels')
    tool(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools/test.py'), trained['config'],
            osp.join(trained['work_dir'], 'iter_4.pth'), '--work-dir',
            osp.join(trained['tmp'], 'test_work'), '--show-dir', show_dir,
            '--metrics-json', metrics_file, '--cfg-options'
        ] + tiny_options(trained['data_root'], 4),
        cwd=trained['tmp'])
    with open(metrics_file) as f:
        metrics = json.load(f)
    assert set(metrics) == {'aAcc', 'mIoU', 'mAcc'}
    # the same checkpoint on the same test set: what the training run's
    # validation after iteration 4 logged (2 decimals, float32 in the json)
    logged = re.findall(
        r'Iter\(val\) \[\d+/\d+\]\s+aAcc: ([\d.]+)\s+mIoU: ([\d.]+)\s+'
        r'mAcc: ([\d.]+)', trained['resumed'])
    assert logged, trained['resumed'][-2000:]
    a_acc, miou, m_acc = map(float, logged[-1])
    assert metrics['aAcc'] == pytest.approx(a_acc, abs=5e-5)
    assert metrics['mIoU'] == pytest.approx(miou, abs=5e-5)
    assert metrics['mAcc'] == pytest.approx(m_acc, abs=5e-5)
    panels = glob.glob(f'{show_dir}/**/*00016*.png', recursive=True)
    assert len(glob.glob(f'{show_dir}/**/*.png', recursive=True)) == 4
    assert len(panels) == 1, panels
    panel = cv2.imread(panels[0])
    # RGB | depth | prediction | ground truth, each 64x64
    assert panel.shape == (64, 4 * 64, 3)
    rgb = cv2.imread(f'{trained["data_root"]}/rgb/00016.png')
    assert (panel[:, :64] == rgb).all()


def test_test_time_augmentation(trained):
    metrics_file = osp.join(trained['tmp'], 'tta_metrics.json')
    tool(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools/test.py'), trained['config'],
            osp.join(trained['work_dir'], 'iter_4.pth'), '--tta', '--work-dir',
            osp.join(trained['tmp'], 'tta_work'), '--metrics-json',
            metrics_file, '--cfg-options'
        ] + tiny_options(trained['data_root'], 4),
        cwd=trained['tmp'])
    dumped = osp.join(trained['tmp'], 'tta_work',
                      osp.basename(trained['config']))
    # the config the runner really used
    assert Config.fromfile(dumped).model.type == 'SegTTAModel'
    with open(metrics_file) as f:
        assert 0 <= json.load(f)['mIoU'] <= 100


def test_load_from_full_checkpoint(trained):
    log = tool(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools/train.py'), CONFIG, '--work-dir',
            osp.join(trained['tmp'], 'finetune'), '--cfg-options',
            f'load_from={trained["work_dir"]}/iter_4.pth'
        ] + tiny_options(trained['data_root'], 2),
        cwd=trained['tmp'])
    assert f'Load checkpoint from {trained["work_dir"]}/iter_4.pth' in log
    assert 'Iter(train) [2/2]' in log


def test_dist_train_two_cpu_processes(tmp_path):
    work_dir = str(tmp_path / 'ddp')
    env = dict(
        os.environ,
        PYTHON=sys.executable,
        PORT=str(random.randint(20000, 40000)),
        OMP_NUM_THREADS='1')
    log = tool(
        [
            'bash',
            osp.join(REPO_ROOT,
                     'tools/dist_train.sh'), CONFIG, '2', '--work-dir',
            work_dir, '--cfg-options', 'env_cfg.dist_cfg.backend=gloo'
        ] + tiny_options(str(tmp_path / 'synthetic'), 2),
        cwd=tmp_path,
        env=env)
    assert 'Distributed launcher: pytorch' in log
    assert 'Distributed training: True' in log
    assert "dist_cfg: {'backend': 'gloo'}" in log
    assert 'GPU number: 2' in log  # mmengine's name for the world size
    assert log.count('Iter(train) [2/2]') == 1  # rank 0 logs
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))
