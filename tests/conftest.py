import sys

import numpy as np
import pytest

from .utils import REPO_ROOT, write_canonical_sample

if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)


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
