"""Datasets, loading, geometric alignment, packing and the data
preprocessor of the multimodal segmentation pipeline."""
import copy

import cv2
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmseg.registry import DATASETS, MODELS, TRANSFORMS

from projects.multimodal_seg.datasets import (LAYOUTS, NYU40_CLASSES,
                                              SUNRGBD37_CLASSES,
                                              generate_synthetic_rgbd)
from projects.multimodal_seg.datasets.transforms import read_depth
from ..utils import write_canonical_sample


def build_dataset(root, modalities=('rgb', 'depth'), pipeline=(), **kw):
    cfg = dict(
        type='NYUDv2RGBDDataset',
        data_root=str(root),
        ann_file='train.txt',
        modalities=modalities,
        pipeline=list(pipeline))
    cfg.update(kw)
    return DATASETS.build(cfg)


LOAD = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthFromFile'),
    dict(type='LoadValidatedAnnotations')
]


# ----------------------------------------------------------------- datasets
def test_dataset_canonical_layout(rgbd_root):
    dataset = build_dataset(rgbd_root)
    assert len(dataset) == 3
    info = dataset.get_data_info(1)
    assert info['img_path'] == str(rgbd_root / 'rgb' / 'b.png')
    assert info['seg_map_path'] == str(rgbd_root / 'label' / 'b.png')
    assert info['modality_paths'] == {
        'depth': str(rgbd_root / 'depth' / 'b.png')
    }
    assert info['modalities'] == ('rgb', 'depth')
    assert info['num_classes'] == 40
    assert dataset.metainfo['classes'] == NYU40_CLASSES
    assert len(dataset.metainfo['palette']) == 40
    assert len(set(map(tuple, dataset.metainfo['palette']))) == 40
    assert len(SUNRGBD37_CLASSES) == 37


def test_dataset_public_layouts(tmp_path):
    # TokenFusion: TAB-separated columns rgb, mask, depth.
    root = tmp_path / 'tf'
    for sub in ('rgb', 'masks', 'depth'):
        (root / sub).mkdir(parents=True)
        (root / sub / '000003.png').write_bytes(b'x')
    (root / 'train.txt'
     ).write_text('rgb/000003.png\tmasks/000003.png\tdepth/000003.png')
    info = build_dataset(root, layout='tokenfusion').get_data_info(0)
    assert info['img_path'] == str(root / 'rgb' / '000003.png')
    assert info['seg_map_path'] == str(root / 'masks' / '000003.png')
    assert info['modality_paths']['depth'] == str(root / 'depth' /
                                                  '000003.png')
    assert info['reduce_zero_label'] is False

    # DFormer: "RGB/<name>.jpg Label/<name>.png" lines, labels 1..K.
    root = tmp_path / 'df'
    for sub, ext in (('RGB', '.jpg'), ('Depth', '.png'), ('Label', '.png')):
        (root / sub).mkdir(parents=True)
        (root / sub / f'17{ext}').write_bytes(b'x')
    (root / 'train.txt').write_text('RGB/17.jpg Label/17.png\n')
    dataset = build_dataset(root, layout='dformer')
    info = dataset.get_data_info(0)
    assert info['img_path'] == str(root / 'RGB' / '17.jpg')
    assert info['modality_paths']['depth'] == str(root / 'Depth' / '17.png')
    assert info['reduce_zero_label'] is True

    # CMX: bare names, HHA as the extra modality.
    root = tmp_path / 'cmx'
    for sub, ext in (('RGB', '.jpg'), ('HHA', '.jpg'), ('Label', '.png')):
        (root / sub).mkdir(parents=True)
        (root / sub / f'5{ext}').write_bytes(b'x')
    (root / 'train.txt').write_text('5\n')
    info = build_dataset(
        root, modalities=('rgb', 'hha'), layout='cmx').get_data_info(0)
    assert info['modality_paths'] == {'hha': str(root / 'HHA' / '5.jpg')}
    assert set(LAYOUTS) == {'canonical', 'tokenfusion', 'cmx', 'dformer'}


def test_dataset_errors(rgbd_root):
    (rgbd_root / 'depth' / 'b.png').unlink()
    with pytest.raises(FileNotFoundError, match=r"sample 'b'.*depth"):
        build_dataset(rgbd_root)
    # The RGB-only variant does not need depth files.
    assert len(build_dataset(rgbd_root, modalities=('rgb', ))) == 3
    (rgbd_root / 'empty.txt').write_text('\n\n')
    with pytest.raises(ValueError, match='empty.txt lists no samples'):
        build_dataset(rgbd_root, ann_file='empty.txt', modalities=('rgb', ))
    with pytest.raises(KeyError, match="'event' has no folder"):
        build_dataset(rgbd_root, modalities=('rgb', 'event'))
    with pytest.raises(ValueError, match='Unknown layout'):
        build_dataset(rgbd_root, layout='nope')


# ------------------------------------------------------------------ loading
def test_read_depth_png_npy_and_invalid_rule(tmp_path):
    depth = np.array([[0, 1000], [5000, 65535]], np.uint16)
    cv2.imwrite(str(tmp_path / 'd.png'), depth)
    out = read_depth(str(tmp_path / 'd.png'), unit_scale=1e-3)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, depth.astype(np.float32) * 1e-3)

    metres = np.array([[np.nan, 1.5], [-2.0, np.inf]], np.float32)
    np.save(tmp_path / 'd.npy', metres)
    np.testing.assert_array_equal(
        read_depth(str(tmp_path / 'd.npy'), unit_scale=1000),
        [[0, 1500], [0, 0]])

    cv2.imwrite(str(tmp_path / 'd8.png'), depth.astype(np.uint8))
    with pytest.raises(TypeError, match=r'd8.png stores uint8'):
        read_depth(str(tmp_path / 'd8.png'))
    np.testing.assert_array_equal(
        read_depth(str(tmp_path / 'd8.png'), dtypes=('uint8', )),
        depth.astype(np.uint8))
    colour = np.zeros((2, 2, 3), np.uint8)
    colour[0, 0] = (1, 2, 3)
    cv2.imwrite(str(tmp_path / 'jet.png'), colour)
    with pytest.raises(ValueError, match='colour image'):
        read_depth(str(tmp_path / 'jet.png'), dtypes=('uint8', ))

    data = (tmp_path / 'd.png').read_bytes()
    (tmp_path / 'cut.png').write_bytes(data[:len(data) // 2])
    with pytest.raises(OSError, match='cut.png'):
        read_depth(str(tmp_path / 'cut.png'))


def test_load_sample(rgbd_root):
    dataset = build_dataset(rgbd_root, pipeline=LOAD)
    results = dataset[0]
    depth = cv2.imread(str(rgbd_root / 'depth' / 'a.png'), -1)
    np.testing.assert_array_equal(results['depth'], depth)
    assert results['depth'].dtype == np.float32
    assert results['seg_fields'] == ['depth', 'gt_seg_map']
    np.testing.assert_array_equal(
        results['gt_seg_map'],
        cv2.imread(str(rgbd_root / 'label' / 'a.png'), -1))


@pytest.mark.parametrize('broken, message', [
    ('depth_size', r"depth .*a.png is 48x30 \(WxH\) but the RGB image is "
     r'48x40'),
    ('label_size', r'label .*a.png is 20x40 \(WxH\) but the RGB image'),
    ('label_values', r'a.png holds values \[40, 77\] outside the 40'),
    ('label_16bit', r'holds values outside 0..255'),
    ('depth_dtype', r'a.png stores uint8'),
    ('truncated', r'Cannot decode depth image .*a.png'),
    ('missing_label', r"Sample .*a.png: label file .* does not exist"),
])
def test_load_bad_input(rgbd_root, broken, message):
    dataset = build_dataset(rgbd_root, pipeline=LOAD, check_files=False)
    rgb_depth = rgbd_root / 'depth' / 'a.png'
    label = rgbd_root / 'label' / 'a.png'
    if broken == 'depth_size':
        cv2.imwrite(str(rgb_depth), np.ones((30, 48), np.uint16))
    elif broken == 'label_size':
        cv2.imwrite(str(label), np.ones((40, 20), np.uint8))
    elif broken == 'label_values':
        values = np.zeros((40, 48), np.uint8)
        values[0, :2] = (40, 77)
        values[1, 0] = 255
        cv2.imwrite(str(label), values)
    elif broken == 'label_16bit':
        cv2.imwrite(str(label), np.full((40, 48), 300, np.uint16))
    elif broken == 'depth_dtype':
        cv2.imwrite(str(rgb_depth), np.ones((40, 48), np.uint8))
    elif broken == 'truncated':
        rgb_depth.write_bytes(rgb_depth.read_bytes()[:60])
    elif broken == 'missing_label':
        label.unlink()
    with pytest.raises((ValueError, TypeError, OSError), match=message):
        dataset[0]


def test_reduce_zero_label(rgbd_root):
    label = np.array([[0, 1, 40], [2, 0, 255]], np.uint8)
    label = np.pad(label, ((0, 38), (0, 45)), constant_values=1)
    cv2.imwrite(str(rgbd_root / 'label' / 'a.png'), label)
    dataset = build_dataset(rgbd_root, pipeline=LOAD, reduce_zero_label=True)
    np.testing.assert_array_equal(dataset[0]['gt_seg_map'][:2, :3],
                                  [[255, 0, 39], [1, 255, 255]])


# ------------------------------------------------ geometry and photometry
def aligned_sample(root):
    """Depth, label and every RGB channel encode the same pattern, so any
    geometric transform that treats them differently breaks the relation.
    """
    yy, xx = np.mgrid[0:40, 0:48]
    pattern = ((yy // 5) * 7 + (xx // 6) * 3) % 5
    rgb = np.repeat((pattern * 50)[..., None], 3, 2).astype(np.uint8)
    depth = (pattern * 1000 + 1000).astype(np.uint16)
    write_canonical_sample(root, 'a', rgb, depth, pattern.astype(np.uint8))
    return pattern


@pytest.mark.parametrize('seed', range(4))
def test_geometric_transforms_keep_modalities_aligned(rgbd_root, seed):
    aligned_sample(rgbd_root)
    pipeline = LOAD + [
        dict(
            type='RandomResize',
            scale=(48, 40),
            ratio_range=(0.5, 2.0),
            keep_ratio=True,
            interpolation='nearest'),  # so that img values stay exact
        dict(type='RandomCrop', crop_size=(32, 36), cat_max_ratio=0.75),
        dict(type='RandomFlip', prob=0.5),
        dict(type='MultiModalPad', size=(40, 40)),
    ]
    np.random.seed(seed)
    results = build_dataset(rgbd_root, pipeline=pipeline)[0]
    img, depth, label = (results['img'], results['depth'],
                         results['gt_seg_map'])
    assert img.shape[:2] == depth.shape == label.shape == (40, 40)
    valid = label != 255
    # pad area: depth 0 ("no measurement"), label 255, image 0
    assert (depth[~valid] == 0).all() and (img[~valid] == 0).all()
    classes = label[valid].astype(np.float32)
    np.testing.assert_array_equal(depth[valid], classes * 1000 + 1000)
    np.testing.assert_array_equal(img[valid][:, 0], classes * 50)


def test_photometric_distortion_touches_rgb_only(rgbd_root):
    pipeline = LOAD + [dict(type='PhotoMetricDistortion', hue_delta=60)]
    np.random.seed(0)
    results = build_dataset(rgbd_root, pipeline=pipeline)[0]
    raw = build_dataset(rgbd_root, pipeline=LOAD)[0]
    assert not np.array_equal(results['img'], raw['img'])
    np.testing.assert_array_equal(results['depth'], raw['depth'])


def test_photometric_distortion_without_hue():
    """The DeLiVER / GeminiFusion NYUDv2 colour jitter: brightness,
    contrast and saturation change, the hue does not, on every draw (mmseg's
    own with hue_delta=0 raises whenever its hue step runs)."""
    image = np.random.default_rng(0).integers(0, 256,
                                              (16, 16, 3)).astype(np.uint8)
    jitter = dict(
        brightness_delta=32,
        contrast_range=(0.5, 1.5),
        saturation_range=(0.5, 1.5))
    no_hue = TRANSFORMS.build(
        dict(type='PhotoMetricDistortionNoHue', **jitter))
    mmseg_jitter = TRANSFORMS.build(
        dict(type='PhotoMetricDistortion', hue_delta=0, **jitter))
    crashed = changed = 0
    for seed in range(20):
        np.random.seed(seed)
        out = no_hue(dict(img=image.copy()))['img']
        changed += not np.array_equal(out, image)
        np.random.seed(seed)
        try:
            mmseg_jitter(dict(img=image.copy()))
        except ValueError as error:
            assert 'high <= 0' in str(error)
            crashed += 1
    assert crashed > 0 and changed > 10
    assert no_hue.hue(image) is image
    with pytest.raises(ValueError, match='changes no hue'):
        TRANSFORMS.build(dict(type='PhotoMetricDistortionNoHue', hue_delta=9))


# ------------------------------------------------ packing + preprocessing
def pack(root, modalities, pipeline=LOAD):
    return build_dataset(
        root,
        modalities=modalities,
        pipeline=list(pipeline) + [dict(type='PackMultiModalSegInputs')])


def test_pack_and_preprocess_normalisation(rgbd_root):
    packed = pack(rgbd_root, ('rgb', 'depth'))[0]
    inputs, sample = packed['inputs'], packed['data_samples']
    assert inputs.shape == (4, 40, 48) and inputs.dtype == torch.float32
    assert sample.metainfo['modalities'] == ('rgb', 'depth')
    assert sample.metainfo['modality_channels'] == (3, 1)

    preprocessor = MODELS.build(
        dict(
            type='MultiModalSegDataPreProcessor',
            modalities=('rgb', 'depth'),
            size=(44, 50)))
    out = preprocessor(
        dict(inputs=[inputs], data_samples=[sample]), training=True)
    x = out['inputs']
    assert x.shape == (1, 6, 44, 50)
    rgb = cv2.imread(str(rgbd_root / 'rgb' / 'a.png'))[..., ::-1]
    depth = cv2.imread(str(rgbd_root / 'depth' / 'a.png'), -1)
    mean = np.array([123.675, 116.28, 103.53])
    std = np.array([58.395, 57.12, 57.375])
    expected_rgb = (rgb - mean) / std
    np.testing.assert_allclose(
        x[0, :3, :40, :48].permute(1, 2, 0).numpy(), expected_rgb, atol=1e-5)
    for c in range(3, 6):  # depth x 1/5000, tiled to 3 channels
        np.testing.assert_allclose(
            x[0, c, :40, :48].numpy(), depth / 5000., rtol=1e-6)
    assert (x[0, :, 40:, :] == 0).all() and (x[0, :, :, 48:] == 0).all()
    gt = out['data_samples'][0].gt_sem_seg.data
    assert gt.shape == (1, 44, 50) and (gt[:, 40:] == 255).all()


def test_pack_and_preprocess_single_modalities(rgbd_root):
    depth_only = pack(rgbd_root, ('depth', ))[0]
    assert depth_only['inputs'].shape == (1, 40, 48)
    pre = MODELS.build(
        dict(type='MultiModalSegDataPreProcessor', modalities=('depth', )))
    x = pre(
        dict(
            inputs=[depth_only['inputs']],
            data_samples=[depth_only['data_samples']]))['inputs']
    assert x.shape == (1, 3, 40, 48)
    rgb_only = pack(rgbd_root, ('rgb', ))[0]
    assert rgb_only['inputs'].shape == (3, 40, 48)


def test_modality_mismatch_errors(rgbd_root):
    packed = pack(rgbd_root, ('rgb', 'depth'))[0]
    pre = MODELS.build(
        dict(type='MultiModalSegDataPreProcessor', modalities=('rgb', )))
    with pytest.raises(
            ValueError,
            match=r"a.png holds modalities \('rgb', "
            r"'depth'\) but the data preprocessor is configured "
            r"for \('rgb',\)"):
        pre(
            dict(
                inputs=[packed['inputs']],
                data_samples=[packed['data_samples']]))
    pre = MODELS.build(
        dict(type='MultiModalSegDataPreProcessor', modalities=('rgb', 'hha')))
    sample = copy.deepcopy(packed['data_samples'])
    sample.set_metainfo(dict(modalities=('rgb', 'hha')))
    with pytest.raises(ValueError, match=r'has 4 input channels, expected 6'):
        pre(dict(inputs=[packed['inputs']], data_samples=[sample]))
    # The dataset lists depth but the pipeline does not load it.
    with pytest.raises(
            KeyError,
            match="modality 'depth' listed by the "
            'dataset was not loaded'):
        pack(
            rgbd_root, ('rgb', 'depth'),
            pipeline=[dict(type='LoadImageFromFile')])[0]


def test_load_hha_modality(tmp_path):
    root = tmp_path / 'cmx'
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)
    hha = rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)
    for sub in ('RGB', 'HHA', 'Label'):
        (root / sub).mkdir(parents=True)
    cv2.imwrite(str(root / 'RGB' / '1.jpg'), rgb)
    cv2.imwrite(str(root / 'HHA' / '1.jpg'), hha)
    cv2.imwrite(str(root / 'Label' / '1.png'), np.ones((8, 10), np.uint8))
    (root / 'train.txt').write_text('1\n')
    dataset = build_dataset(
        root,
        modalities=('rgb', 'hha'),
        layout='cmx',
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadModalityImageFromFile', modality='hha'),
            dict(type='LoadValidatedAnnotations'),
            dict(type='PackMultiModalSegInputs')
        ])
    packed = dataset[0]
    assert packed['inputs'].shape == (6, 8, 10)
    np.testing.assert_array_equal(packed['inputs'][3:].permute(1, 2, 0),
                                  cv2.imread(str(root / 'HHA' / '1.jpg')))
    # reduce_zero_label: label 1 -> class 0
    assert (packed['data_samples'].gt_sem_seg.data == 0).all()


def test_transforms_registered():
    for name in ('LoadDepthFromFile', 'LoadModalityImageFromFile',
                 'LoadValidatedAnnotations', 'PackMultiModalSegInputs',
                 'MultiModalPad'):
        assert TRANSFORMS.get(name) is not None, name
    with pytest.raises(ValueError, match='cannot name an extra modality'):
        Compose([dict(type='LoadDepthFromFile', modality='img')])


# ---------------------------------------------------------------- synthetic
def test_synthetic_set_is_deterministic_and_needs_both_modalities(tmp_path):
    root = generate_synthetic_rgbd(
        str(tmp_path / 's1'), num_train=6, num_test=2, image_size=(32, 40))
    generate_synthetic_rgbd(
        str(tmp_path / 's2'), num_train=6, num_test=2, image_size=(32, 40))
    assert (tmp_path / 's1' /
            'train.txt').read_text().split() == [f'{i:05d}' for i in range(6)]
    for sub in ('rgb/00003.png', 'depth/00007.png', 'label/00001.png'):
        assert (tmp_path / 's1' / sub).read_bytes() == (tmp_path / 's2' /
                                                        sub).read_bytes()
    # Second call with the same parameters leaves the files alone.
    assert generate_synthetic_rgbd(root, 6, 2, (32, 40)) == root

    colour_of = {}
    relief_of = {}
    for i in range(8):
        rgb = cv2.imread(f'{root}/rgb/{i:05d}.png')[..., ::-1].astype(float)
        depth = cv2.imread(f'{root}/depth/{i:05d}.png', -1).astype(float)
        label = cv2.imread(f'{root}/label/{i:05d}.png', -1)
        floor = np.median(depth[(label == 0) & (depth > 0)])
        for cls in np.unique(label[label > 0]):
            mask = (label == cls) & (depth > 0)
            red = rgb[mask][:, 0].mean() > rgb[mask][:, 2].mean()
            colour_of.setdefault(cls, set()).add(red)
            relief_of.setdefault(cls,
                                 []).append(np.median(depth[mask]) - floor)
    # classes 1/2 red, 3/4 blue; 1/3 raised (closer), 2/4 sunken
    assert colour_of.get(1, {True}) == {True}
    assert colour_of.get(2, {True}) == {True}
    assert colour_of.get(3, {False}) == {False}
    assert colour_of.get(4, {False}) == {False}
    for cls, offsets in relief_of.items():
        assert all((o < 0) == (cls in (1, 3)) for o in offsets), cls
