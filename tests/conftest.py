import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)


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


@pytest.fixture
def rgbd_root(tmp_path):
    """A 3-sample canonical RGB-D set of 40x48 (HxW) images, 5 classes."""
    rng = np.random.default_rng(0)
    root = tmp_path / 'rgbd'
    names = ['a', 'b', 'c']
    for name in names:
        rgb = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        depth = rng.integers(1, 6000, (40, 48), dtype=np.uint16)
        label = rng.integers(0, 5, (40, 48), dtype=np.uint8)
        write_canonical_sample(root, name, rgb, depth, label)
    (root / 'train.txt').write_text('\n'.join(names) + '\n')
    (root / 'test.txt').write_text('c\n')
    return root


@pytest.fixture(autouse=True)
def mmseg_scope():
    from mmengine.registry import DefaultScope

    import projects.multimodal_seg  # noqa: F401  (registers the modules)
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield
