"""The token-merging analysis tools: accuracy against GFLOPs at several r
(the numbers of a direct forward at each r) and the merge pictures."""
import json
import os.path as osp

import cv2
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope, init_default_scope
from mmpretrain.registry import DATASETS, MODELS

from tools.analysis_tools import (token_merging_tradeoff,
                                  visualize_token_merging)
from tools.analysis_tools.model_panels import GAP, HEADER
from ..utils import REPO_ROOT

CONFIGS = osp.join(REPO_ROOT, 'configs/mctf')
PLAIN = f'{CONFIGS}/vit-tiny-p4_1xb64-2k_synthetic-shapes-32x32.py'
MCTF = f'{CONFIGS}/mctf_vit-tiny-p4_1xb64-500_synthetic-shapes-32x32.py'
TOME = f'{CONFIGS}/tome_vit-tiny-p4_1xb64-500_synthetic-shapes-32x32.py'
NUM_TEST = 24


@pytest.fixture(scope='module')
def plain_checkpoint(tmp_path_factory):
    """A randomly initialised plain ViT of the demo and a small test set."""
    tmp = tmp_path_factory.mktemp('merging')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        torch.manual_seed(0)
        model = MODELS.build(Config.fromfile(PLAIN).model)
        model.init_weights()
        # mmpretrain zeroes the head: give it weights, or every class ties
        for param in model.head.parameters():
            torch.nn.init.normal_(param, std=1.)
    path = str(tmp / 'plain.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    data = dict(data_root=str(tmp / 'shapes'), num_train=6, num_test=NUM_TEST)
    options = [
        f'test_dataloader.dataset.{key}={value}'
        for key, value in data.items()
    ]
    return dict(tmp=tmp, checkpoint=path, options=options, data=data)


def direct_accuracy(config, checkpoint, data, r):
    """Top-1 (%) of the config's model at r by a plain forward of every
    test image."""
    cfg = Config.fromfile(config)
    init_default_scope('mmpretrain')
    model = MODELS.build(cfg.model)
    model.load_state_dict(torch.load(checkpoint)['state_dict'])
    model.eval()
    model.backbone.r_eval = r
    dataset = DATASETS.build({**cfg.test_dataloader.dataset, **data})
    batch = model.data_preprocessor(
        pseudo_collate([dataset[i] for i in range(len(dataset))]), False)
    with torch.no_grad():
        preds = model(**batch, mode='predict')
    hits = [int(p.pred_label) == int(p.gt_label) for p in preds]
    return 100 * sum(hits) / len(hits)


def test_tradeoff_measures_each_r(plain_checkpoint):
    ckpt = plain_checkpoint['checkpoint']
    out_dir = str(plain_checkpoint['tmp'] / 'tradeoff')
    results = token_merging_tradeoff.main([
        f'MCTF={MCTF}:{ckpt}', f'ToMe={TOME}:{ckpt}', '--r', '0', '4',
        '--out-dir', out_dir, '--cfg-options', *plain_checkpoint['options']
    ])
    with open(osp.join(out_dir, 'tradeoff.json')) as f:
        assert json.load(f) == results
    assert osp.getsize(osp.join(out_dir, 'tradeoff.png')) > 0
    table = open(osp.join(out_dir, 'tradeoff.md')).read()
    assert table.count('\n| ToMe | ') == 2
    mctf, tome = results['MCTF'], results['ToMe']
    assert [row['tokens'] for row in mctf] == [65, 65 - 5 * 4]
    assert [row['tokens'] for row in tome] == [65, 65 - 6 * 4]
    # r = 0 is the same plain ViT for both
    assert mctf[0]['gflops'] == tome[0]['gflops']
    assert mctf[0]['top1'] == tome[0]['top1']
    assert tome[1]['gflops'] < mctf[1]['gflops'] < mctf[0]['gflops']
    for name, config in (('MCTF', MCTF), ('ToMe', TOME)):
        for row in results[name]:
            assert row['top1'] == pytest.approx(
                direct_accuracy(config, ckpt, plain_checkpoint['data'],
                                row['r'])), (name, row['r'])


def test_tradeoff_rejects_what_it_cannot_measure(plain_checkpoint):
    ckpt = plain_checkpoint['checkpoint']
    out_dir = str(plain_checkpoint['tmp'] / 'bad')
    with pytest.raises(ValueError, match=r'ToMe .* at r=12: layer \d'):
        token_merging_tradeoff.main([
            f'ToMe={TOME}:{ckpt}', '--r', '12', '--out-dir', out_dir,
            '--cfg-options', *plain_checkpoint['options']
        ])
    with pytest.raises(TypeError, match='not a token-merging'):
        token_merging_tradeoff.main([
            f'ViT={PLAIN}:{ckpt}', '--r', '0', '--out-dir', out_dir,
            '--cfg-options', *plain_checkpoint['options']
        ])


def test_merge_pictures(plain_checkpoint):
    ckpt = plain_checkpoint['checkpoint']
    out = str(plain_checkpoint['tmp'] / 'merges.png')
    visualize_token_merging.main([
        f'MCTF={MCTF}:{ckpt}', f'ToMe={TOME}:{ckpt}', '--index', '0',
        '--index', '3', '--r', '6', '--out', out, '--cfg-options',
        *plain_checkpoint['options']
    ])
    picture = cv2.imread(out)
    side = 32 * visualize_token_merging.SCALE
    # a row per image, columns image | MCTF | ToMe
    assert picture.shape == (HEADER + 2 * (side + GAP), 3 * (side + GAP) + GAP,
                             3)
    # the first test image of every class, as many rows as classes
    visualize_token_merging.main([
        f'MCTF={MCTF}:{ckpt}', '--each-class', '--out', out, '--cfg-options',
        *plain_checkpoint['options']
    ])
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        dataset = DATASETS.build({
            **Config.fromfile(MCTF).test_dataloader.dataset,
            **plain_checkpoint['data']
        })
    classes = set(dataset.get_gt_labels().tolist())
    assert len(classes) > 1
    assert cv2.imread(out).shape[:2] == (HEADER + len(classes) * (side + GAP),
                                         2 * (side + GAP) + GAP)
    with pytest.raises(IndexError, match=f'--index {NUM_TEST}'):
        visualize_token_merging.main([
            f'MCTF={MCTF}:{ckpt}', '--index',
            str(NUM_TEST), '--out', out, '--cfg-options',
            *plain_checkpoint['options']
        ])
