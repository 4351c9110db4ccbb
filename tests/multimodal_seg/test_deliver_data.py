"""DeLiVER dataset (official folder tree, label encoding, event resize), the
synthetic RGB / depth / event / LiDAR set (every modality necessary) and
the 4-modality / DeLiVER configs' data parts."""
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmseg.registry import DATASETS, MODELS

from projects.multimodal_seg.datasets import (DELIVER_CLASSES,
                                              render_multimodal_sample)
from projects.multimodal_seg.datasets.synthetic_multimodal import (
    MM_CLASS_ATTRIBUTES, SYNTHETIC_MM_CLASSES, SYNTHETIC_MM_PALETTE)
from ..utils import REPO_ROOT

H, W = 40, 48
DELIVER_LOAD = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadModalityImageFromFile', modality='depth'),
    dict(
        type='LoadModalityImageFromFile', modality='event',
        resize_to_img=True),
    dict(type='LoadModalityImageFromFile', modality='lidar'),
    dict(type='LoadValidatedAnnotations'),
]


def write_deliver_frame(root, condition, split, sequence, frame, rng):
    """One front-view frame in the release's formats: 8-bit RGB(A) image,
    3-channel HHA, event frame at half resolution, grey LiDAR, colour label
    with the class in red. Returns the raw red label channel."""
    folder = (condition, split, sequence)
    files = dict(
        img=('rgb', rng.integers(0, 256, (H, W, 4), dtype=np.uint8)),
        hha=('depth', rng.integers(0, 256, (H, W, 3), dtype=np.uint8)),
        event=('event',
               rng.integers(0, 256, (H // 2, W // 2, 3), dtype=np.uint8)),
        lidar=('lidar', rng.integers(0, 256, (H, W), dtype=np.uint8)))
    red = rng.choice(np.array([0, 1, 7, 25, 255], np.uint8), (H, W))
    label = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    label[..., 2] = red  # BGR on disk: index 2 is red
    files['semantic'] = ('semantic', label)
    for top, (token, array) in files.items():
        path = root.joinpath(top, *folder)
        path.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path / f'{frame}_{token}_front.png'), array)
    return red


@pytest.fixture
def deliver_root(tmp_path):
    """cloud / night x MAP_1 / MAP_2 in train, one cloud frame in val."""
    rng = np.random.default_rng(0)
    root = tmp_path / 'DELIVER'
    labels = {}
    for condition in ('night', 'cloud'):
        for sequence in ('MAP_2', 'MAP_1'):
            labels[(condition,
                    sequence)] = write_deliver_frame(root, condition, 'train',
                                                     sequence, '000123', rng)
    write_deliver_frame(root, 'cloud', 'val', 'MAP_3', '000001', rng)
    return root, labels


def build_deliver(root, **kwargs):
    cfg = dict(type='DeLiVERDataset', data_root=str(root), pipeline=[])
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def test_deliver_finds_official_tree(deliver_root):
    root, _ = deliver_root
    dataset = build_deliver(root)
    assert len(dataset) == 4
    assert dataset.metainfo['classes'] == DELIVER_CLASSES
    assert len(DELIVER_CLASSES) == 25
    assert len(dataset.metainfo['palette']) == 25
    infos = [dataset.get_data_info(i) for i in range(4)]
    assert [osp.relpath(i['img_path'], root / 'img') for i in infos] == [
        f'{c}/train/{s}/000123_rgb_front.png' for c in ('cloud', 'night')
        for s in ('MAP_1', 'MAP_2')
    ]
    info = infos[0]
    seq = osp.join('cloud', 'train', 'MAP_1')
    assert info['img_path'] == str(root / 'img' / seq / '000123_rgb_front.png')
    assert info['modality_paths'] == {
        'depth': str(root / 'hha' / seq / '000123_depth_front.png'),
        'event': str(root / 'event' / seq / '000123_event_front.png'),
        'lidar': str(root / 'lidar' / seq / '000123_lidar_front.png')
    }
    assert info['seg_map_path'] == str(root / 'semantic' / seq /
                                       '000123_semantic_front.png')
    assert info['reduce_zero_label'] is True
    assert info['modalities'] == ('rgb', 'depth', 'event', 'lidar')

    night = build_deliver(
        root, conditions=('night', ), modalities=('rgb', 'lidar'))
    assert len(night) == 2
    assert all('/night/' in night.get_data_info(i)['img_path']
               for i in range(2))
    assert set(night.get_data_info(0)['modality_paths']) == {'lidar'}
    assert len(build_deliver(root, split='val')) == 1


def test_deliver_errors(deliver_root):
    root, _ = deliver_root
    missing = root / 'event' / 'night' / 'train' / 'MAP_2' / \
        '000123_event_front.png'
    missing.unlink()
    with pytest.raises(FileNotFoundError, match='000123_event_front.png'):
        build_deliver(root)
    build_deliver(root, modalities=('rgb', 'depth', 'lidar'))  # not needed
    with pytest.raises(FileNotFoundError, match='no RGB image matches'):
        build_deliver(root, split='test')
    with pytest.raises(ValueError, match='unknown conditions'):
        build_deliver(root, conditions=('snow', ))
    with pytest.raises(ValueError, match="'rgb' followed by"):
        build_deliver(root, modalities=('depth', 'rgb'))
    with pytest.raises(ValueError, match='split'):
        build_deliver(root, split='training')


def test_deliver_pipeline_labels_and_event_resize(deliver_root):
    root, labels = deliver_root
    dataset = build_deliver(
        root, pipeline=DELIVER_LOAD + [dict(type='PackMultiModalSegInputs')])
    packed = dataset[0]  # cloud / MAP_1
    inputs = packed['inputs']
    assert inputs.shape == (12, H, W)
    gt = packed['data_samples'].gt_sem_seg.data[0].numpy()
    red = labels[('cloud', 'MAP_1')]
    # reference: 255 -> 0, then -1 (uint8): 0 and 255 -> ignore, k -> k-1
    expected = red.astype(np.int16) - 1
    expected[(red == 0) | (red == 255)] = 255
    np.testing.assert_array_equal(gt, expected)

    event_file = dataset.get_data_info(0)['modality_paths']['event']
    small = cv2.imread(event_file, cv2.IMREAD_COLOR)
    upsampled = cv2.resize(small, (W, H), interpolation=cv2.INTER_NEAREST)
    event = inputs[6:9].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(event, upsampled)
    # alpha channel of the RGBA image dropped, LiDAR grey tiled to 3
    lidar = inputs[9:12]
    assert torch.equal(lidar[0], lidar[1]) and torch.equal(lidar[1], lidar[2])

    # sizes must match for maps loaded without resize_to_img
    strict = [dict(DELIVER_LOAD[2], resize_to_img=False)]
    with pytest.raises(ValueError, match='pixel-aligned'):
        Compose(DELIVER_LOAD[:1] + strict)(dict(dataset.get_data_info(0)))


def test_modality_defaults_event_lidar():
    pre = MODELS.build(
        dict(
            type='MultiModalSegDataPreProcessor',
            modalities=('rgb', 'event', 'lidar')))
    assert pre.out_channels == (3, 3, 3)
    x = torch.arange(9 * 2 * 2, dtype=torch.float32).view(9, 2, 2)
    y = pre.normalize(x)
    # BGR -> RGB flip and / 255, no mean
    torch.testing.assert_close(y[3:6], x[3:6].flip(0) / 255)
    torch.testing.assert_close(y[6:9], x[6:9].flip(0) / 255)


# ------------------------------------------------------ synthetic 4-modal
def plane_residual(depth, label):
    """Depth minus a plane fitted to the valid floor pixels."""
    yy, xx = np.mgrid[0:depth.shape[0], 0:depth.shape[1]]
    valid = (label == 0) & (depth > 0)
    design = np.stack([np.ones(valid.sum()), yy[valid], xx[valid]], 1)
    coef = np.linalg.lstsq(design, depth[valid].astype(float), rcond=None)[0]
    return depth - (coef[0] + coef[1] * yy + coef[2] * xx)


def region_features(sample):
    """Per connected class region (>= 20 px): class and one scalar
    statistic per modality: mean R - B (RGB), mean depth offset from the
    floor plane, fraction of pixels with events, mean LiDAR return."""
    label = sample['label']
    h, w = label.shape
    event = cv2.resize(
        sample['event'], (w, h), interpolation=cv2.INTER_NEAREST)
    fired = event.max(2) > 0
    residual = plane_residual(sample['depth'].astype(float), label)
    rgb = sample['rgb'].astype(float)
    lidar = sample['lidar'].astype(float)
    rows = []
    for cls in range(1, len(SYNTHETIC_MM_CLASSES)):
        count, comps = cv2.connectedComponents((label == cls).astype(np.uint8))
        for comp in range(1, count):
            region = comps == comp
            returns = region & (lidar > 0)
            if region.sum() < 20 or returns.sum() < 5:
                continue
            rows.append((cls, (rgb[region, 0] - rgb[region, 2]).mean(),
                         np.median(residual[region & (sample['depth'] > 0)]),
                         fired[region].mean(), lidar[returns].mean()))
    return rows


def best_threshold_accuracy(a, b):
    """Balanced accuracy of the best single threshold separating a / b."""
    best = 0.
    for t in np.concatenate([a, b]):
        acc = ((a <= t).mean() + (b > t).mean()) / 2
        best = max(best, acc, 1 - acc)
    return best


def test_synthetic_multimodal_every_modality_needed():
    rng = np.random.default_rng(1)
    rows = np.array([
        r for _ in range(150)
        for r in region_features(render_multimodal_sample(rng, (64, 64)))
    ])
    modalities = ('rgb', 'depth', 'event', 'lidar')
    # the class table: class 1 vs the class differing only in modality m
    base = MM_CLASS_ATTRIBUTES[1]
    for m, modality in enumerate(modalities):
        other = [
            c for c, attrs in MM_CLASS_ATTRIBUTES.items()
            if sum(x != y
                   for x, y in zip(attrs, base)) == 1 and attrs[m] != base[m]
        ]
        assert len(other) == 1, modality
        a = rows[rows[:, 0] == 1]
        b = rows[rows[:, 0] == other[0]]
        assert len(a) > 30 and len(b) > 30
        for n, name in enumerate(modalities):
            acc = best_threshold_accuracy(a[:, 1 + n], b[:, 1 + n])
            if n == m:  # separable in its own modality ...
                assert acc > 0.97, (modality, name, acc)
            else:  # ... and indistinguishable in every other one
                assert acc < 0.75, (modality, name, acc)


def test_synthetic_multimodal_dataset(tmp_path):
    root = tmp_path / 'mm'
    dataset = DATASETS.build(
        dict(
            type='SyntheticMultiModalDataset',
            data_root=str(root),
            ann_file='train.txt',
            num_train=4,
            num_test=2,
            image_size=(32, 40),
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='LoadDepthFromFile'),
                dict(
                    type='LoadModalityImageFromFile',
                    modality='event',
                    resize_to_img=True),
                dict(type='LoadModalityImageFromFile', modality='lidar'),
                dict(type='LoadValidatedAnnotations'),
                dict(type='PackMultiModalSegInputs')
            ]))
    assert len(dataset) == 4
    assert cv2.imread(str(root / 'event' / '00000.png')).shape == (16, 20, 3)
    assert cv2.imread(str(root / 'lidar' / '00000.png'),
                      cv2.IMREAD_UNCHANGED).ndim == 2
    packed = dataset[0]
    # rgb 3 + depth 1 + event 3 + lidar 3 channels
    assert packed['inputs'].shape == (10, 32, 40)
    assert packed['data_samples'].gt_sem_seg.data.max() < 6
    with pytest.raises(ValueError, match='unknown modalities'):
        DATASETS.build(
            dict(
                type='SyntheticMultiModalDataset',
                data_root=str(root),
                ann_file='train.txt',
                modalities=('rgb', 'thermal'),
                num_train=4,
                num_test=2,
                image_size=(32, 40)))


# ---------------------------------------------------------------- configs
def config(name):
    return Config.fromfile(osp.join(REPO_ROOT, 'configs', name))


def modality_names(preprocessor_cfg):
    return tuple(
        m if isinstance(m, str) else m['name']
        for m in preprocessor_cfg.modalities)


DELIVER_CONFIGS = [
    'geminifusion/geminifusion_mit-b2_8xb1-200e_deliver-rgbdel-1024x1024.py',
    'geminifusion/geminifusion_mit-b2_8xb1-200e_deliver-rgbd-1024x1024.py'
]
SYNTHETIC_CONFIGS = [
    'tokenfusion/tokenfusion_mit-tiny_1xb8-3k_synthetic-rgbdel-64x64.py',
    'geminifusion/geminifusion_mit-tiny_1xb8-3k_synthetic-rgbdel-64x64.py'
]


def run_loader(cfg, loader, index=0):
    """Build the dataset of a dataloader config and the config's data
    preprocessor; return the preprocessed batch of one sample."""
    dataset = DATASETS.build(cfg[loader].dataset)
    pre = MODELS.build(cfg.model.data_preprocessor)
    assert tuple(cfg[loader].dataset.modalities) == modality_names(
        cfg.model.data_preprocessor)
    sample = dataset[index]
    batch = pre(
        dict(inputs=[sample['inputs']], data_samples=[sample['data_samples']]),
        training=loader == 'train_dataloader')
    return sample, batch


@pytest.mark.parametrize('name', DELIVER_CONFIGS)
def test_deliver_configs_data(name, deliver_root):
    root, _ = deliver_root
    cfg = config(name)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = str(root)
        cfg[loader].dataset.split = 'train'
    Compose(cfg.tta_pipeline)
    n = len(cfg.train_dataloader.dataset.modalities)
    assert n == (4 if 'rgbdel' in name else 2)
    assert cfg.model.backbone.num_modalities == n
    assert cfg.model.backbone.drop_path_rate == (0.2 if n == 4 else 0.4)
    # short side rescaled to 1024 x U(0.5, 2), 1024 crop, padded if smaller
    sample, batch = run_loader(cfg, 'train_dataloader')
    assert sample['inputs'].shape == (3 * n, 1024, 1024)
    assert batch['inputs'].shape == (1, 3 * n, 1024, 1024)
    gt = sample['data_samples'].gt_sem_seg.data
    assert set(gt.unique().tolist()) <= set(range(25)) | {255}
    # eval: shorter side to 1024, then multiples of 32 (48 / 40 * 1024)
    sample, batch = run_loader(cfg, 'val_dataloader')
    assert batch['inputs'].shape == (1, 3 * n, 1024, 1248)
    # every non-RGB modality /255 only: values in [0, 1]
    x = batch['inputs'][0, 3:]
    assert x.min() >= 0 and x.max() <= 1 and x.max() > 0.9
    # OHEM sampler of the reference (thresh 0.7, >= 1/16 of 1024^2 kept)
    sampler = cfg.model.decode_head.sampler
    assert sampler.type == 'OHEMPixelSampler' and sampler.thresh == 0.7
    assert sampler.min_kept == 1024 * 1024 // 16
    assert cfg.model.decode_head.channels == 512
    assert cfg.optim_wrapper.optimizer.lr == 2e-4
    assert cfg.train_cfg.max_epochs == 200 and cfg.train_cfg.val_begin == 101


def test_deliver_head_with_ohem_sampler():
    """The shared SegFormer head takes mmseg's OHEM sampler."""
    cfg = config(DELIVER_CONFIGS[0])
    head_cfg = cfg.model.decode_head
    head_cfg.update(
        in_channels=[8, 8, 8, 8],
        channels=8,
        sampler=dict(type='OHEMPixelSampler', thresh=0.7, min_kept=10))
    head = MODELS.build(head_cfg)
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(data=torch.randint(0, 25, (1, 16, 16)))
    logits = torch.randn(1, 25, 4, 4, requires_grad=True)
    loss = head.loss_by_feat(logits, [sample])['loss_ce']
    loss.backward()
    assert torch.isfinite(loss) and logits.grad.abs().sum() > 0


@pytest.mark.parametrize('name', SYNTHETIC_CONFIGS)
def test_synthetic_rgbdel_configs_data(name, tmp_path):
    cfg = config(name)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.update(
            data_root=str(tmp_path / 'mm'), num_train=4, num_test=2)
    Compose(cfg.tta_pipeline)
    assert cfg.model.backbone.num_modalities == 4
    assert cfg.model.decode_head.num_classes == len(SYNTHETIC_MM_CLASSES)
    for loader in ('train_dataloader', 'val_dataloader'):
        sample, batch = run_loader(cfg, loader)
        assert batch['inputs'].shape == (1, 12, 64, 64)
    if 'tokenfusion' in name:  # the 4-modal TokenFusion model builds
        model = MODELS.build(cfg.model)
        losses = model.loss(batch['inputs'], batch['data_samples'])
        assert all(
            torch.isfinite(v) for v in losses.values()
            if isinstance(v, torch.Tensor))


def test_synthetic_multimodal_palette_tells_every_class_apart():
    colours = {tuple(c) for c in SYNTHETIC_MM_PALETTE}
    assert len(colours) == len(SYNTHETIC_MM_PALETTE) == len(
        SYNTHETIC_MM_CLASSES)
