"""Missing / corrupted modalities: the training transform
``RandomModalityCorruption``, the data preprocessor's
``missing_modalities`` (the evaluation tool is tested in
``tests/tools/test_trained_model.py``)."""
import numpy as np
import pytest
import torch
from mmseg.registry import MODELS, TRANSFORMS
from mmseg.structures import SegDataSample

from projects.multimodal_seg.datasets.transforms import (
    CORRUPTION_META_KEYS, RandomModalityCorruption)


def make_results(seed=0, modalities=('rgb', 'depth')):
    rng = np.random.default_rng(seed)
    results = dict(
        modalities=modalities,
        img=rng.integers(1, 256, (8, 10, 3), dtype=np.uint8))
    if 'depth' in modalities:
        results['depth'] = rng.uniform(500, 4000, (8, 10)).astype(np.float32)
    return results


def corrupt_many(transform, n=400):
    return [transform(make_results(i)) for i in range(n)]


# ---------------------------------------------------------------- transform
def test_transform_built_from_a_config_corrupts_one_modality():
    transform = TRANSFORMS.build(
        dict(
            type='RandomModalityCorruption',
            modalities=('depth', ),
            prob=1.0,
            mode='zero',
            seed=0))
    original = make_results(0)
    out = transform(make_results(0))
    assert out['corrupted_modality'] == 'depth'
    assert out['corruption_mode'] == 'zero'
    assert not out['depth'].any() and original['depth'].all()
    np.testing.assert_array_equal(out['img'], original['img'])


def test_probability_and_choice():
    outs = corrupt_many(RandomModalityCorruption(prob=0.3, seed=1))
    names = [r['corrupted_modality'] for r in outs]
    rate = sum(n is not None for n in names) / len(names)
    assert 0.22 < rate < 0.38
    assert {n for n in names if n} == {'rgb', 'depth'}
    assert all(r['corruption_mode'] in (None, 'zero') for r in outs)
    assert not any(
        r['corrupted_modality']
        for r in corrupt_many(RandomModalityCorruption(prob=0., seed=1), 50))


def test_seed_is_deterministic():

    def run(seed):
        outs = corrupt_many(
            RandomModalityCorruption(
                prob=0.5, mode=('zero', 'noise', 'replace'), seed=seed), 50)
        return [(r['corrupted_modality'], r['corruption_mode'], r['img'],
                 r['depth']) for r in outs]

    first, second, other = run(3), run(3), run(4)
    for a, b in zip(first, second):
        assert a[:2] == b[:2]
        np.testing.assert_array_equal(a[2], b[2])
        np.testing.assert_array_equal(a[3], b[3])
    assert [a[:2] for a in first] != [a[:2] for a in other]
    # without a seed of its own: numpy's global state
    np.random.seed(7)
    a = corrupt_many(RandomModalityCorruption(prob=0.5), 30)
    np.random.seed(7)
    b = corrupt_many(RandomModalityCorruption(prob=0.5), 30)
    assert [r['corrupted_modality'] for r in a] == \
        [r['corrupted_modality'] for r in b]


def test_never_all_modalities():
    for r in corrupt_many(
            RandomModalityCorruption(prob=1.0, mode='zero', seed=0), 100):
        corrupted = r['corrupted_modality']
        assert corrupted in ('rgb', 'depth')
        other = 'depth' if corrupted == 'rgb' else 'img'
        assert r[other].any(), 'both modalities were removed'
    # a single-modality sample is never corrupted
    transform = RandomModalityCorruption(prob=1.0, seed=0)
    for i in range(20):
        r = transform(make_results(i, modalities=('rgb', )))
        assert r['corrupted_modality'] is None and r['img'].any()


def test_only_listed_modalities():
    transform = RandomModalityCorruption(
        modalities=('depth', ), prob=1.0, seed=0)
    for i in range(20):
        original = make_results(i)
        r = transform(make_results(i))
        assert r['corrupted_modality'] == 'depth'
        np.testing.assert_array_equal(r['img'], original['img'])
        assert not r['depth'].any()


def test_modes():
    original = make_results(0)
    zero = RandomModalityCorruption(('rgb', ), 1.0, 'zero', seed=0)
    r = zero(make_results(0))
    assert r['img'].dtype == np.uint8 and not r['img'].any()
    np.testing.assert_array_equal(r['depth'], original['depth'])

    noise = RandomModalityCorruption(('rgb', ), 1.0, 'noise', 0.05, seed=0)
    r = noise(make_results(0))
    assert r['img'].dtype == np.uint8
    diff = r['img'].astype(float) - original['img']
    # std 0.05 * 255, clipped to 0..255
    assert 8 < diff.std() < 16 and abs(diff.mean()) < 3

    depth_noise = RandomModalityCorruption(('depth', ), 1.0, 'noise', 0.1,
                                           dict(depth=(0., 10000.)), 0)
    r = depth_noise(make_results(0))
    diff = r['depth'] - original['depth']
    assert r['depth'].dtype == np.float32
    assert 700 < diff.std() < 1300 and r['depth'].min() >= 0

    replace = RandomModalityCorruption(('depth', ),
                                       1.0,
                                       'replace',
                                       0.1,
                                       seed=0)
    r = replace(make_results(0))
    low, high = original['depth'].min(), original['depth'].max()
    # independent of the original values, within the sample's own range
    assert abs(
        np.corrcoef(r['depth'].ravel(), original['depth'].ravel())[0, 1]) < 0.3
    assert low <= r['depth'].min() and r['depth'].max() <= high
    assert abs(r['depth'].mean() - (low + high) / 2) < 0.05 * (high - low)

    with pytest.raises(ValueError, match='mode'):
        RandomModalityCorruption(mode='blur')
    with pytest.raises(ValueError, match='prob'):
        RandomModalityCorruption(prob=1.5)


def test_packed_metainfo(rgbd_root):
    from mmcv.transforms import Compose
    from mmseg.registry import DATASETS
    dataset = DATASETS.build(
        dict(
            type='NYUDv2RGBDDataset',
            data_root=str(rgbd_root),
            ann_file='train.txt',
            modalities=('rgb', 'depth'),
            pipeline=[]))
    pipeline = Compose([
        dict(type='LoadImageFromFile'),
        dict(type='LoadDepthFromFile'),
        dict(type='LoadValidatedAnnotations'),
        dict(type='RandomModalityCorruption', prob=1.0, seed=0),
        dict(type='PackMultiModalSegInputs', meta_keys=CORRUPTION_META_KEYS)
    ])
    packed = pipeline(dataset[0])
    meta = packed['data_samples'].metainfo
    assert meta['corrupted_modality'] in ('rgb', 'depth')
    assert meta['corruption_mode'] == 'zero'
    channels = slice(0, 3) if meta['corrupted_modality'] == 'rgb' else 3
    assert not packed['inputs'][channels].any()


# ------------------------------------------------------------- preprocessor
def preprocess(missing=()):
    preprocessor = MODELS.build(
        dict(
            type='MultiModalSegDataPreProcessor',
            modalities=('rgb', 'depth'),
            missing_modalities=missing))
    torch.manual_seed(0)
    inputs = [
        torch.cat([
            torch.randint(0, 256, (3, 6, 5)).float(),
            torch.rand(1, 6, 5) * 5000
        ]) for _ in range(2)
    ]
    samples = [
        SegDataSample(
            metainfo=dict(
                modalities=('rgb', 'depth'),
                img_shape=(6, 5),
                ori_shape=(6, 5))) for _ in range(2)
    ]
    return preprocessor(dict(inputs=inputs, data_samples=samples))['inputs']


def test_preprocessor_missing_modalities():
    full = preprocess()
    assert full.shape == (2, 6, 6, 5)  # rgb 3 + depth tiled to 3
    without_depth = preprocess(('depth', ))
    assert torch.equal(without_depth[:, :3], full[:, :3])
    assert not without_depth[:, 3:].any() and full[:, 3:].any()
    without_rgb = preprocess(['rgb'])
    assert not without_rgb[:, :3].any()
    assert torch.equal(without_rgb[:, 3:], full[:, 3:])
    with pytest.raises(ValueError, match=r"\('rgb', 'depth'\)"):
        preprocess(('hha', ))
