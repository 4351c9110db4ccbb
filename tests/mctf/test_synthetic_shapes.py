"""The synthetic shapes set of the MCTF demo: deterministic, written as
class folders that mmpretrain's CustomDataset reads, and its classes are
told apart by what lies inside the shapes."""
import glob
import os.path as osp

import numpy as np
import pytest
from mmpretrain.registry import DATASETS

from projects.mctf.datasets.synthetic_shapes import (SHAPE_CLASSES,
                                                     generate_synthetic_shapes,
                                                     render_sample, shape_mask)


def test_same_seed_same_images_other_seed_others():
    first = render_sample(np.random.default_rng(3))
    again = render_sample(np.random.default_rng(3))
    other = render_sample(np.random.default_rng(4))
    assert first[1] == again[1] and (first[0] == again[0]).all()
    assert first[0].shape == (32, 32, 3) and first[0].dtype == np.uint8
    assert (first[0] != other[0]).any()


def coverage_at_centre(cls, seed):
    """Coverage of the shape's own centre (its coverage-weighted mean
    position)."""
    mask = shape_mask(np.random.default_rng(seed), cls, 32)
    yy, xx = np.mgrid[0:32, 0:32]
    cy = int(round((mask * yy).sum() / mask.sum()))
    cx = int(round((mask * xx).sum() / mask.sum()))
    return mask[cy, cx]


@pytest.mark.parametrize('filled, hollow', [('disc', 'ring'),
                                            ('square', 'frame')])
def test_hollow_classes_differ_from_filled_ones_inside(filled, hollow):
    for seed in range(5):
        assert coverage_at_centre(SHAPE_CLASSES.index(filled), seed) == 1
        assert coverage_at_centre(SHAPE_CLASSES.index(hollow), seed) == 0


def test_dataset_reads_the_generated_class_folders(tmp_path):
    root = str(tmp_path / 'shapes')
    dataset = DATASETS.build(
        dict(
            type='SyntheticShapesDataset',
            data_root=root,
            split='test',
            num_train=12,
            num_test=30,
            pipeline=[dict(type='LoadImageFromFile'),
                      dict(type='PackInputs')]))
    assert dataset.metainfo['classes'] == SHAPE_CLASSES
    assert len(dataset) == 30
    files = glob.glob(osp.join(root, 'test', '*', '*.png'))
    assert len(files) == 30
    assert len(glob.glob(osp.join(root, 'train', '*', '*.png'))) == 12
    for index in range(len(dataset)):  # the label is the folder
        info = dataset.get_data_info(index)
        folder = osp.basename(osp.dirname(info['img_path']))
        assert SHAPE_CLASSES[info['gt_label']] == folder
    sample = dataset[0]
    assert tuple(sample['inputs'].shape) == (3, 32, 32)
    # the same parameters again: nothing is rewritten
    before = osp.getmtime(files[0])
    generate_synthetic_shapes(root, 12, 30)
    assert osp.getmtime(files[0]) == before


def test_bad_split_is_named(tmp_path):
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        DATASETS.build(
            dict(
                type='SyntheticShapesDataset',
                data_root=str(tmp_path / 's'),
                split='val',
                num_train=2,
                num_test=2))
