"""Helpers shared by the test modules (plain functions, imported by name;
pytest fixtures stay in the conftest files)."""
import os.path as osp
import subprocess

import cv2

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# real sample data the tests read (see data/PROVENANCE.md)
DATA_ROOT = osp.join(REPO_ROOT, 'tests', 'data')


def tiny_options(data_root, max_iters):
    """Shrink the demo config: 16 train / 4 test images, batch 2."""
    data = f'data_root={data_root} dataset.num_train=16 dataset.num_test=4'
    options = [
        f'train_cfg.max_iters={max_iters}',
        f'train_cfg.val_interval={max_iters}',
        'default_hooks.checkpoint.interval=2', 'train_dataloader.batch_size=2',
        'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
        'test_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.persistent_workers=False',
        'test_dataloader.persistent_workers=False',
        'default_hooks.logger.interval=1'
    ]
    for loader in ('train', 'val', 'test'):
        options += [
            f'{loader}_dataloader.dataset.{item.replace("dataset.", "")}'
            for item in data.split()
        ]
    return options


def synthetic_data_options(data_root, num_train=8, num_test=2):
    """``--cfg-options`` that point every dataloader of a synthetic demo
    config at ``data_root`` with ``num_train`` / ``num_test`` images, read
    in the main process."""
    options = []
    for loader in ('train', 'val', 'test'):
        options += [
            f'{loader}_dataloader.dataset.data_root={data_root}',
            f'{loader}_dataloader.dataset.num_train={num_train}',
            f'{loader}_dataloader.dataset.num_test={num_test}',
            f'{loader}_dataloader.num_workers=0',
            f'{loader}_dataloader.persistent_workers=False'
        ]
    return options


def modules_loaded_by(package):
    """Names of every module loaded by importing ``package`` in a fresh
    interpreter (so that no test has imported anything before)."""
    import json
    import sys
    probe = ('import json, sys\n'
             f'import {package}\n'
             'print(json.dumps(sorted(sys.modules)))\n')
    proc = subprocess.run([sys.executable, '-c', probe],
                          cwd=REPO_ROOT,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def tool(args, cwd, env=None, timeout=300):
    """Run a repository tool in a subprocess; fail with its output."""
    proc = subprocess.run(
        args,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    return output


def write_canonical_sample(root, name, rgb, depth, label):
    """Write one sample in the canonical layout (rgb given in RGB order)."""
    for sub in ('rgb', 'depth', 'label'):
        (root / sub).mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / 'rgb' / f'{name}.png'), rgb[..., ::-1])
    cv2.imwrite(str(root / 'depth' / f'{name}.png'), depth)
    cv2.imwrite(str(root / 'label' / f'{name}.png'), label)


def seg_samples(batch, size=64, classes=5, modalities=('rgb', 'depth')):
    """mmseg data samples with random labels for a (batch, ..., size, size)
    input."""
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    out = []
    for _ in range(batch):
        sample = SegDataSample(
            metainfo=dict(
                img_shape=(size, size),
                ori_shape=(size, size),
                pad_shape=(size, size),
                modalities=modalities,
                img_path='x.png'))
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, classes, (1, size, size)))
        out.append(sample)
    return out
