"""ScanNet v2 posed images: the info converter, MultiViewScanNetDataset and
LoadMultiViewPosedImages, on a mini ScanNet layout built around the real
scene0000_00 point cloud."""
import importlib
import os
import os.path as osp
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope

from projects.multimodal_det3d.datasets.scannet_multiview import \
    MultiViewScanNetDataset
from projects.multimodal_det3d.datasets.transforms.multiview_loading import (
    LoadMultiViewPosedImages, resize_matrix, sample_view_indices)
from ..utils import REPO_ROOT
from .scannet_scene import (AXIS_ALIGN, BAD_FRAME, IMG_H, IMG_W, NUM_FRAMES,
                            OUT_H, OUT_W, SCENE, K, build_converted_scene,
                            frame_colour, write_matrix)

posed = importlib.import_module(
    'tools.dataset_converters.scannet_posed_images')


@pytest.fixture(scope='module')
def scene(tmp_path_factory):
    """Mini layout, converted once; the known point is the scan centroid."""
    return build_converted_scene(tmp_path_factory.mktemp('scannet'))


def test_converter_output(scene):
    root = scene['root']
    with open(root / 'scannet_infos_train.pkl', 'rb') as f:
        before = pickle.load(f)
    with open(root / 'scannet_infos_train_posed.pkl', 'rb') as f:
        after = pickle.load(f)
    assert after['metainfo'] == before['metainfo']
    entry = after['data_list'][0]
    for key, value in before['data_list'][0].items():
        assert entry[key] == value, key
    assert 'images' not in before['data_list'][0]  # input left untouched

    views = entry['images']
    good = [i for i in range(NUM_FRAMES) if i != BAD_FRAME]
    assert [v['img_path'] for v in views] == \
        [f'{SCENE}/{i:05d}.jpg' for i in good]
    for view, index in zip(views, good):
        assert (view['height'], view['width']) == (IMG_H, IMG_W)
        np.testing.assert_allclose(view['cam2img'], K)
        pose = np.loadtxt(root / 'posed_images' / SCENE / f'{index:05d}.txt')
        # the stored extrinsic undoes axis alignment, then the pose
        np.testing.assert_allclose(
            np.array(view['lidar2cam']) @ AXIS_ALIGN @ pose,
            np.eye(4),
            atol=1e-9)
        centre = np.array(view['cam2img']) @ view['lidar2cam'] @ \
            scene['target_aligned']
        np.testing.assert_allclose(centre[:2] / centre[2], K[:2, 2], atol=1e-4)


def test_converter_max_views_and_cli(scene, tmp_path):
    root = scene['root']
    infos = pickle.load(open(root / 'scannet_infos_train.pkl', 'rb'))
    new_infos, stats = posed.add_posed_images(
        infos, str(root / 'posed_images'), max_views=4)
    names = [v['img_path'] for v in new_infos['data_list'][0]['images']]
    good = [i for i in range(NUM_FRAMES) if i != BAD_FRAME]
    # evenly spaced over the 11 usable frames, first and last kept
    assert names == [f'{SCENE}/{good[i]:05d}.jpg' for i in (0, 3, 7, 10)]
    assert stats == dict(scenes=1, views=4, skipped_poses=1, empty_scenes=[])
    assert posed.evenly_spaced(5, 1) == [0]
    assert posed.evenly_spaced(3, 8) == [0, 1, 2]

    # the real command line, run as a script
    out = tmp_path / 'sub' / 'infos.pkl'
    proc = subprocess.run([
        sys.executable,
        osp.join(REPO_ROOT, 'tools', 'dataset_converters',
                 'scannet_posed_images.py'), '--infos',
        str(root / 'scannet_infos_train.pkl'), '--posed-images',
        str(root / 'posed_images'), '--out',
        str(out), '--max-views', '2'
    ],
                          capture_output=True,
                          text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert '1 frames skipped' in proc.stdout
    written = pickle.load(open(out, 'rb'))
    assert [v['img_path'] for v in written['data_list'][0]['images']] == \
        [f'{SCENE}/{good[0]:05d}.jpg', f'{SCENE}/{good[-1]:05d}.jpg']


def run_error(argv):
    with pytest.raises(SystemExit) as exc_info:
        posed.main(argv)
    message = exc_info.value.code
    assert isinstance(message, str) and 'error' in message, message
    return message


def test_converter_errors(scene, tmp_path):
    info = tmp_path / 'infos.pkl'
    shutil.copy(scene['root'] / 'scannet_infos_train.pkl', info)
    images = tmp_path / 'posed_images'
    base = ['--infos', str(info), '--posed-images', str(images)]
    os.makedirs(images)
    message = run_error(base)
    assert 'scene0000_00' in message and str(images / SCENE) in message

    shutil.copytree(scene['root'] / 'posed_images' / SCENE, images / SCENE)
    os.remove(images / SCENE / 'intrinsic.txt')
    message = run_error(base)
    assert str(images / SCENE / 'intrinsic.txt') in message

    write_matrix(images / SCENE / 'intrinsic.txt', K)
    with open(images / SCENE / '00005.txt', 'w') as f:
        f.write('1 0 0\n0 1 0\n0 0 1\n')
    message = run_error(base)
    assert str(images / SCENE / '00005.txt') in message and '4' in message

    for name in os.listdir(images / SCENE):
        if name.endswith('.txt') and name != 'intrinsic.txt':
            write_matrix(images / SCENE / name, np.full((4, 4), -np.inf))
    message = run_error(base)
    assert 'no frame with a finite pose' in message and SCENE in message
    with pytest.warns(UserWarning, match='kept with images'):
        posed.main(base + ['--allow-empty'])
    written = pickle.load(open(tmp_path / 'infos_posed.pkl', 'rb'))
    assert written['data_list'][0]['images'] == []

    message = run_error(base + ['--out', str(info)])
    assert 'would replace its input' in message
    with pytest.raises(SystemExit):  # argparse: --out with two inputs
        posed.main([
            '--infos',
            str(info),
            str(info), '--posed-images',
            str(images), '--out',
            str(tmp_path / 'x.pkl')
        ])


def assert_evenly_spaced(picks, num_frames, num_views):
    """Distinct, increasing, gaps of floor/ceil(F / V), inside the scene."""
    assert len(picks) == num_views
    assert 0 <= picks[0] and picks[-1] < num_frames
    gaps = set(np.diff(picks).tolist())
    assert gaps <= {num_frames // num_views, -(-num_frames // num_views)}


def test_sample_view_indices():
    picks = sample_view_indices(11, 5)
    np.testing.assert_array_equal(picks, sample_view_indices(11, 5))
    # the centres of 5 equal bins of 11 frames (bin width 2.2)
    np.testing.assert_array_equal(picks, [1, 3, 5, 7, 9])
    starts = set()
    for offset in np.linspace(0, 0.999, 20):
        shifted = sample_view_indices(11, 5, offset)
        assert_evenly_spaced(shifted, 11, 5)
        starts.add(int(shifted[0]))
    assert starts == {0, 1, 2}
    np.testing.assert_array_equal(sample_view_indices(7, 7), np.arange(7))
    # fewer frames than views: cyclic repetition
    np.testing.assert_array_equal(sample_view_indices(3, 5), [0, 1, 2, 0, 1])
    np.testing.assert_array_equal(
        sample_view_indices(3, 5, 0.5), [1, 2, 0, 1, 2])
    with pytest.raises(ValueError):
        sample_view_indices(0, 5)
    with pytest.raises(ValueError):
        sample_view_indices(4, 2, 1.0)
    np.testing.assert_array_equal(
        resize_matrix(0.5, 2.) @ [10., 10., 1., 1.], [5., 20., 1., 1.])


def pipeline(num_views, test_mode=True):
    return [
        dict(
            type='LoadPointsFromFile',
            coord_type='DEPTH',
            load_dim=6,
            use_dim=[0, 1, 2]),
        dict(
            type='LoadAnnotations3D',
            with_bbox_3d=True,
            with_label_3d=True,
            with_mask_3d=True,
            with_seg_3d=True),
        dict(type='GlobalAlignment', rotation_axis=2),
        dict(type='PointSample', num_points=2000),
        dict(
            type='LoadMultiViewPosedImages',
            num_views=num_views,
            img_scale=(OUT_W, OUT_H),
            test_mode=test_mode),
        dict(
            type='Pack3DDetInputs',
            keys=['points', 'img', 'gt_bboxes_3d', 'gt_labels_3d'])
    ]


def build_dataset(root,
                  num_views,
                  ann_file='scannet_infos_train_posed.pkl',
                  **kwargs):
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        return MultiViewScanNetDataset(
            data_root=str(root),
            ann_file=ann_file,
            pipeline=pipeline(num_views, kwargs.pop('test_mode', True)),
            **kwargs)


def preprocess(samples):
    from mmdet3d.models.data_preprocessors import Det3DDataPreprocessor
    preprocessor = Det3DDataPreprocessor(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True)
    return preprocessor(pseudo_collate(samples))


def test_dataset_parse_data_info(scene):
    root = scene['root']
    dataset = build_dataset(root, 5)
    info = dataset.get_data_info(0)
    good = [i for i in range(NUM_FRAMES) if i != BAD_FRAME]
    assert info['img_paths'] == [
        osp.join(str(root), 'posed_images', SCENE, f'{i:05d}.jpg')
        for i in good
    ]
    assert 'images' not in info
    for key in ('lidar2img', 'cam2img', 'lidar2cam'):
        assert info[key].shape == (len(good), 4, 4)
        assert info[key].dtype == np.float32
    np.testing.assert_allclose(
        info['lidar2img'], info['cam2img'] @ info['lidar2cam'], rtol=1e-5)


def test_pipeline_projects_known_point(scene):
    dataset = build_dataset(scene['root'], 5)
    sample = dataset[0]
    assert sample['inputs']['points'].shape == (2000, 3)
    imgs = sample['inputs']['img']
    assert imgs.shape == (5, 3, OUT_H, OUT_W) and imgs.dtype == torch.uint8
    meta = sample['data_samples'].metainfo
    assert meta['num_views'] == 5
    assert tuple(meta['img_shape']) == (OUT_H, OUT_W)
    assert tuple(meta['ori_shape']) == (IMG_H, IMG_W)
    lidar2img = meta['lidar2img']
    assert lidar2img.shape == (5, 4, 4) and lidar2img.dtype == np.float32

    frames = [int(osp.basename(p)[:-4]) for p in meta['img_path']]
    assert BAD_FRAME not in frames
    good = [i for i in range(NUM_FRAMES) if i != BAD_FRAME]
    assert frames == [good[i] for i in sample_view_indices(len(good), 5)]
    for view, frame in enumerate(frames):
        # the pixels are the frame's, in BGR order
        colour = imgs[view].float().mean((1, 2)).numpy()
        np.testing.assert_allclose(colour, frame_colour(frame), atol=3)
        # the scan centroid projects to the principal point of the resized
        # view: the resize is folded into lidar2img
        uvw = lidar2img[view].astype(np.float64) @ scene['target_aligned']
        assert uvw[2] > 0
        np.testing.assert_allclose(
            uvw[:2] / uvw[2],
            [K[0, 2] * OUT_W / IMG_W, K[1, 2] * OUT_H / IMG_H],
            atol=1e-3)
        np.testing.assert_allclose(
            meta['cam2img'][view][:2, 2],
            [K[0, 2] * OUT_W / IMG_W, K[1, 2] * OUT_H / IMG_H],
            rtol=1e-6)

    # the matrices are for the points GlobalAlignment produced
    raw = scene['points'][:, :3].astype(np.float64)
    aligned = raw @ AXIS_ALIGN[:3, :3].T + AXIS_ALIGN[:3, 3]
    packed = sample['inputs']['points'][:50].double()
    dist = torch.cdist(packed, torch.from_numpy(aligned)).min(1).values
    assert dist.max() < 1e-4

    batch = preprocess([sample, dataset[0]])
    batch_imgs = batch['inputs']['imgs']
    assert batch_imgs.shape == (2, 5, 3, OUT_H, OUT_W)
    # bgr_to_rgb: channel 0 is red (40) after normalisation
    red = batch_imgs[0, :, 0].mean().item() * 58.395 + 123.675
    assert abs(red - 40) < 3
    assert batch['data_samples'][1].metainfo['lidar2img'].shape == (5, 4, 4)


def test_train_sampling_is_random_and_spread(scene):
    dataset = build_dataset(scene['root'], 5, test_mode=False)
    good = [i for i in range(NUM_FRAMES) if i != BAD_FRAME]
    firsts = set()
    np.random.seed(0)
    for _ in range(6):
        meta = dataset[0]['data_samples'].metainfo
        frames = [int(osp.basename(p)[:-4]) for p in meta['img_path']]
        indices = [good.index(f) for f in frames]
        assert_evenly_spaced(np.array(indices), len(good), 5)
        firsts.add(indices[0])
    assert len(firsts) > 1


def test_fewer_frames_than_views_repeat(scene):
    transform = LoadMultiViewPosedImages(
        num_views=4, img_scale=(OUT_W, OUT_H), test_mode=True)
    info = build_dataset(scene['root'], 4).get_data_info(0)
    results = {
        key: info[key][:2]
        for key in ('img_paths', 'lidar2img', 'cam2img', 'lidar2cam')
    }
    out = transform(results)
    assert len(out['img']) == 4
    assert out['img_path'] == info['img_paths'][:2] * 2
    np.testing.assert_allclose(out['lidar2img'][2], out['lidar2img'][0])


def test_points_only(scene):
    dataset = build_dataset(scene['root'], 0)
    sample = dataset[0]
    assert 'img' not in sample['inputs']
    meta = sample['data_samples'].metainfo
    assert meta['num_views'] == 0 and 'lidar2img' not in meta
    batch = preprocess([sample])
    assert 'imgs' not in batch['inputs']
    assert batch['inputs']['points'][0].shape == (2000, 3)

    # the posed infos also serve a camera-less dataset ...
    no_camera = build_dataset(
        scene['root'], 0, modality=dict(use_camera=False, use_lidar=True))
    assert 'img' not in no_camera[0]['inputs']
    # ... but then views cannot be loaded
    no_camera = build_dataset(
        scene['root'], 5, modality=dict(use_camera=False, use_lidar=True))
    with pytest.raises(KeyError, match="'img_paths'.*use_camera=True"):
        no_camera[0]


def test_missing_images_key(scene):
    with pytest.raises(KeyError) as exc_info:
        build_dataset(scene['root'], 5, ann_file='scannet_infos_train.pkl')
    message = str(exc_info.value)
    assert 'scannet_infos_train.pkl' in message and SCENE in message
    assert "'images'" in message and 'scannet_posed_images.py' in message


def test_transform_errors():
    with pytest.raises(ValueError, match='num_views'):
        LoadMultiViewPosedImages(num_views=-1)
    with pytest.raises(ValueError, match='img_scale'):
        LoadMultiViewPosedImages(num_views=2, img_scale=(64, ))
    with pytest.raises(ValueError, match='sampling'):
        LoadMultiViewPosedImages(num_views=2, sampling='random')
    empty = dict(
        img_paths=[],
        lidar2img=np.zeros((0, 4, 4)),
        cam2img=np.zeros((0, 4, 4)),
        lidar2cam=np.zeros((0, 4, 4)),
        lidar_path='points/scene0001_00.bin')
    with pytest.raises(ValueError, match='scene0001_00.*no posed frame'):
        LoadMultiViewPosedImages(num_views=2)(empty)
    wrong = dict(empty, img_paths=['a.jpg'])
    with pytest.raises(ValueError, match=r'lidar2img must be \(1, 4, 4\)'):
        LoadMultiViewPosedImages(num_views=2)(wrong)


def test_fusion_config_trains_and_evaluates_on_posed_views(scene):
    """The 5-view ScanNet fusion config at its real sizes (50k points,
    GroupFree3D w2x L12-O512, YOLOS-S on 320x240 views) through the
    standard tools: one training iteration with the 2D loss on the projected
    3D boxes, then prediction and IndoorMetric."""
    from ..utils import tool
    root = scene['root']
    config = osp.join(
        REPO_ROOT, 'configs/tokenfusion3d/tokenfusion3d_groupfree3d-w2x-'
        'L12-O512_yolos-s_4xb8-80e_scannet-3d-5view.py')
    options = [
        f'train_dataloader.dataset.dataset.data_root={root}',
        'train_dataloader.dataset.times=1',
        f'val_dataloader.dataset.data_root={root}',
        'val_dataloader.dataset.ann_file=scannet_infos_train_posed.pkl',
        f'test_dataloader.dataset.data_root={root}',
        'test_dataloader.dataset.ann_file=scannet_infos_train_posed.pkl',
        'model.img_backbone.init_cfg=None', 'train_cfg.max_epochs=1',
        'default_hooks.logger.interval=1', 'custom_hooks.1.interval=1'
    ]
    for loader in ('train', 'val', 'test'):
        options += [
            f'{loader}_dataloader.batch_size=1',
            f'{loader}_dataloader.num_workers=0',
            f'{loader}_dataloader.persistent_workers=False'
        ]
    log = tool(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools/train.py'), config, '--work-dir',
            str(root / 'work_dir'), '--cfg-options'
        ] + options,
        cwd=root)
    assert 'Epoch(train) [1][1/1]' in log
    for name in ('img_loss_cls', 'loss_sparsity', 'fusion/visible',
                 's11.center_loss'):
        assert name in log, name
    assert 'mAP_0.25' in log
