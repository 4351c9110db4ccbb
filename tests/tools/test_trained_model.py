"""What a trained model must show through the standard tools: the
early-concat SegFormer trained for 100 iterations on the synthetic RGB-D
set clearly beats the untrained one in ``tools/test.py``,
``tools/analysis_tools/missing_modality.py`` finds that it needs both
modalities (the synthetic set is built so that each one is needed), and
``demo/multimodal_seg_demo.py`` on the test images' folders predicts what
``tools/test.py`` scores."""
import os
import os.path as osp
import re
import shutil
import sys

import cv2
import numpy as np
import pytest

from ..utils import REPO_ROOT, tiny_options, tool

CONFIG = osp.join(
    REPO_ROOT, 'configs/segformer/'
    'segformer_mit-tiny-concat_1xb8-1k_synthetic-rgbd-64x64.py')
ITERS = 100
# measured on the development machine: untrained 8.6, trained 38.5 mIoU
TRAINED_FLOOR = 25.
UNTRAINED_CEILING = 15.
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')


def options(data_root, iters):
    """32 training images in batches of 8, the usual 4 test images."""
    return [
        o.replace('num_train=16', 'num_train=32')
        for o in tiny_options(data_root, iters)
    ] + ['train_dataloader.batch_size=8']


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('trained')
    data_root = str(tmp / 'synthetic')
    runs = {}
    for name, iters, extra in (('trained', ITERS, []),
                               ('untrained', 1,
                                ['optim_wrapper.optimizer.lr=0.0'])):
        work_dir = str(tmp / name)
        tool(
            [
                sys.executable,
                osp.join(REPO_ROOT, 'tools/train.py'), CONFIG, '--work-dir',
                work_dir, '--cfg-options'
            ] + options(data_root, iters) + extra,
            cwd=tmp,
            env=ENV)
        runs[name] = osp.join(work_dir, f'iter_{iters}.pth')
    return dict(tmp=tmp, data_root=data_root, **runs)


def mean_iou(trained, name):
    output = tool(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools/test.py'), CONFIG, trained[name],
            '--work-dir',
            str(trained['tmp'] / f'test_{name}'), '--cfg-options'
        ] + options(trained['data_root'], ITERS),
        cwd=trained['tmp'],
        env=ENV)
    return float(re.findall(r'mIoU: ([\d.]+)', output)[-1])


def test_training_beats_the_untrained_model(trained):
    assert mean_iou(trained, 'untrained') < UNTRAINED_CEILING
    assert mean_iou(trained, 'trained') > TRAINED_FLOOR


def test_missing_modality_tool_finds_both_modalities_needed(trained):
    out = trained['tmp'] / 'table.md'
    output = tool(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools/analysis_tools/missing_modality.py'),
            f'{CONFIG}:{trained["trained"]}', '--out',
            str(out), '--work-dir',
            str(trained['tmp'] / 'missing'), '--jobs', '2', '--cfg-options'
        ] + options(trained['data_root'], ITERS),
        cwd=trained['tmp'],
        env=ENV)
    lines = out.read_text().strip().splitlines()
    assert lines[0] == '| Model | mIoU all | without rgb | without depth |'
    assert len(lines) == 3  # header, rule, one model
    cells = [c.strip() for c in lines[2].strip('|').split('|')]
    assert cells[0] == osp.splitext(osp.basename(CONFIG))[0]
    everything, without_rgb, without_depth = map(float, cells[1:])
    assert everything > TRAINED_FLOOR
    # losing either modality costs at least 5 points
    assert without_rgb < everything - 5 and without_depth < everything - 5
    assert lines[2] in output
    log = (trained['tmp'] / 'missing' / cells[0] / 'without_depth' /
           'test.log').read_text()
    # the evaluation ran with depth switched off in the data preprocessor
    assert re.search(r"missing_modalities=\[\s*'depth',\s*\]", log)


def test_demo_on_folders_predicts_what_tools_test_scores(trained):
    """The checkpoint of tools/train.py records its modalities, and the demo
    CLI on folders of the test images gives the predictions whose mIoU
    tools/test.py reports (same test pipeline, same model)."""
    root = trained['tmp'] / 'test_folders'
    data_root = osp.join(trained['data_root'])
    with open(osp.join(data_root, 'test.txt')) as f:
        names = [line.split()[0] for line in f if line.strip()]
    for sub in ('rgb', 'depth', 'label'):
        (root / sub).mkdir(parents=True)
        for name in names:
            shutil.copy(osp.join(data_root, sub, f'{name}.png'), root / sub)
    out = trained['tmp'] / 'demo_out'
    output = tool([
        sys.executable,
        osp.join(REPO_ROOT, 'demo/multimodal_seg_demo.py'),
        str(root / 'rgb'),
        str(root / 'depth'), CONFIG, trained['trained'], '--out-dir',
        str(out), '--batch-size', '2'
    ],
                  cwd=trained['tmp'],
                  env=ENV)
    assert f'{len(names)} sample(s) segmented into {out}' in output
    num_classes = 5
    intersect = np.zeros(num_classes)
    union = np.zeros(num_classes)
    for name in names:
        pred = cv2.imread(str(out / 'pred' / f'{name}.png'), 0)
        label = cv2.imread(str(root / 'label' / f'{name}.png'), 0)
        assert osp.isfile(out / 'vis' / f'{name}.png')
        valid = label != 255
        for c in range(num_classes):
            p, t = (pred == c) & valid, (label == c) & valid
            intersect[c] += (p & t).sum()
            union[c] += (p | t).sum()
    with np.errstate(invalid='ignore'):
        demo_miou = 100 * np.nanmean(intersect / union)
    assert abs(demo_miou - mean_iou(trained, 'trained')) < 0.006
