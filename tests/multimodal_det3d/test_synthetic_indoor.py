"""Synthetic indoor scenes (SUN RGB-D format) and projected-box drawing."""
import hashlib
import multiprocessing
import os
import os.path as osp
import pickle

import cv2
import numpy as np
import pytest
import torch
from mmcv.ops import points_in_boxes_cpu
from mmdet3d.datasets import SUNRGBDDataset
from mmdet3d.registry import DATASETS
from mmdet3d.structures import DepthInstance3DBoxes
from mmdet3d.structures.bbox_3d import points_cam2img
from mmengine.registry import DefaultScope

from projects.multimodal_det3d.datasets import synthetic_indoor as synth
from projects.multimodal_det3d.visualization import (draw_projected_boxes,
                                                     tag_rectangle)

SMALL = dict(image_size=(96, 72), num_points=1500)


def scenes(count, **kwargs):
    kwargs = {**SMALL, **kwargs}
    return [
        synth.render_scene(np.random.default_rng([7, i]), **kwargs)
        for i in range(count)
    ]


@pytest.fixture(scope='module')
def few_scenes():
    return scenes(6)


def project(points, depth2img):
    """0-based pixels with mmdet3d's own projection (then -1) and depth."""
    uvd = points_cam2img(
        torch.as_tensor(np.asarray(points), dtype=torch.float64),
        torch.as_tensor(depth2img, dtype=torch.float64),
        with_depth=True).numpy()
    return uvd[:, :2] - 1, uvd[:, 2]


def boxes_of(scene):
    return np.array([inst['bbox_3d'] for inst in scene['instances']],
                    np.float64).reshape(-1, 7)


def to_box_frame(points, box):
    """Points in the frame of a gravity-centre box (yaw: +x towards +y)."""
    c, s = np.cos(box[6]), np.sin(box[6])
    shifted = points - box[:3]
    return np.stack([
        c * shifted[:, 0] + s * shifted[:, 1],
        -s * shifted[:, 0] + c * shifted[:, 1], shifted[:, 2]
    ], 1)


def file_digests(root):
    digests = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = osp.join(folder, name)
            with open(path, 'rb') as f:
                digests[osp.relpath(path, root)] = hashlib.sha256(
                    f.read()).hexdigest()
    return digests


# ----------------------------------------------------------------- scenes


def test_scene_contents(few_scenes):
    width, height = SMALL['image_size']
    for scene in few_scenes:
        assert scene['points'].shape == (SMALL['num_points'], 6)
        assert scene['points'].dtype == np.float32
        assert scene['image'].shape == (height, width, 3)
        assert scene['image'].dtype == np.uint8
        assert scene['pixel_instance_ids'].shape == (height, width)
        rgb = scene['points'][:, 3:]
        assert rgb.min() >= 0 and rgb.max() <= 1
        assert 1 <= len(scene['instances']) <= 5
        # Camera at the origin, 1.0-1.4 m above the floor.
        assert 1.0 <= scene['camera_height'] <= 1.4
        floor = -scene['camera_height']
        room = scene['point_instance_ids'] < 0
        assert abs(np.percentile(scene['points'][room, 2], 1) - floor) < 0.05
        for index, inst in enumerate(scene['instances']):
            assert set(inst) == {
                'bbox_3d', 'bbox_label_3d', 'bbox', 'bbox_label'
            }
            name = synth.SUNRGBD_CLASSES[inst['bbox_label_3d']]
            assert name in synth.SYNTHETIC_CLASSES
            assert inst['bbox_label'] == inst['bbox_label_3d']
            x, y, z, dx, dy, dz, yaw = inst['bbox_3d']
            # Standing on the floor, in front of the camera.
            assert z - dz / 2 == pytest.approx(floor)
            assert y > 1.0
            # Every kept box is visible and has points.
            assert (scene['pixel_instance_ids'] == index).sum() >= 20
            assert (scene['point_instance_ids'] == index).sum() > 0
        # The K, Rt -> depth2img construction of mmdet3d's SUN RGB-D
        # converter, with the principal point at the centre (1-based).
        flip = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]])
        expected = scene['intrinsics'] @ flip @ scene['tilt'].T
        np.testing.assert_allclose(scene['depth2img'], expected)
        k = scene['intrinsics']
        assert k[0, 0] == k[1, 1] and 0.85 * width <= k[0, 0] <= 0.95 * width
        assert k[0, 2] - 1 == pytest.approx((width - 1) / 2)
        assert k[1, 2] - 1 == pytest.approx((height - 1) / 2)
        # The camera looks down: its forward axis has a negative z.
        assert -np.sin(np.deg2rad(14.01)) < scene['tilt'][2, 1] < 0


def test_render_scene_is_deterministic():
    first, second = (
        synth.render_scene(np.random.default_rng(3), **SMALL)
        for _ in range(2))
    for key in ('points', 'image', 'depth2img', 'point_instance_ids'):
        np.testing.assert_array_equal(first[key], second[key])
    assert first['instances'] == second['instances']
    other = synth.render_scene(np.random.default_rng(4), **SMALL)
    assert not np.array_equal(first['points'], other['points'])


def test_render_scene_rejects_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match='image_size'):
        synth.render_scene(rng, image_size=(4, 64))
    with pytest.raises(ValueError, match='num_points'):
        synth.render_scene(rng, num_points=0)
    with pytest.raises(ValueError, match='object_point_fraction'):
        synth.render_scene(rng, object_point_fraction=1.5)


def test_box_points_lie_inside_their_box(few_scenes):
    for scene in few_scenes:
        boxes = boxes_of(scene)
        xyz = scene['points'][:, :3].astype(np.float64)
        owner = scene['point_instance_ids']
        for index, box in enumerate(boxes):
            local = to_box_frame(xyz[owner == index], box)
            assert (np.abs(local) < box[3:6] / 2).all()
        # The same with mmcv's CPU kernel (the semantics of the
        # points_in_boxes_all that GroupFree3D's target assignment uses):
        # box points are in exactly their box, room points in none.
        bottom = boxes.copy()
        bottom[:, 2] -= bottom[:, 5] / 2
        inside = points_in_boxes_cpu(
            torch.from_numpy(xyz).float()[None],
            torch.from_numpy(bottom).float()[None])[0].numpy()
        expected = np.zeros_like(inside)
        has_box = owner >= 0
        expected[has_box, owner[has_box]] = 1
        np.testing.assert_array_equal(inside, expected)


def test_points_lie_in_the_camera_frustum(few_scenes):
    width, height = SMALL['image_size']
    for scene in few_scenes:
        uv, depth = project(scene['points'][:, :3], scene['depth2img'])
        pixel = np.round(uv)
        assert (depth > 0).all()
        assert (pixel >= 0).all()
        assert (pixel[:, 0] < width).all() and (pixel[:, 1] < height).all()


def test_2d_boxes_are_projected_corners(few_scenes):
    width, height = SMALL['image_size']
    for scene in few_scenes:
        boxes = boxes_of(scene)
        corners = DepthInstance3DBoxes(
            torch.from_numpy(boxes), origin=(0.5, 0.5, 0.5)).corners
        for index, inst in enumerate(scene['instances']):
            uv, depth = project(corners[index].numpy(), scene['depth2img'])
            assert (depth > 0).all()
            low = np.clip(uv.min(0), 0, (width - 1, height - 1))
            high = np.clip(uv.max(0), 0, (width - 1, height - 1))
            np.testing.assert_allclose(
                inst['bbox'], np.concatenate([low, high]), atol=1e-3)
            assert high[0] > low[0] and high[1] > low[1]
            # The rendered box is DepthInstance3DBoxes' box (yaw sign,
            # corner convention): its pixels lie in the hull of the
            # projected mmdet3d corners.
            hull = cv2.convexHull(uv.astype(np.float32))
            rows, cols = np.nonzero(scene['pixel_instance_ids'] == index)
            distance = np.array([
                cv2.pointPolygonTest(hull, (float(c), float(r)), True)
                for r, c in zip(rows, cols)
            ])
            assert (distance > -1.0).all()
            # ... and fill it (a wrong yaw would leave holes): pixel centres
            # well inside the hull show this box or another (nearer) one.
            x1, y1, x2, y2 = np.round(inst['bbox']).astype(int)
            rows, cols = np.mgrid[y1:y2 + 1, x1:x2 + 1]
            interior = np.array([
                cv2.pointPolygonTest(hull, (float(c), float(r)), True)
                for r, c in zip(rows.ravel(), cols.ravel())
            ]) > 0.75
            seen = scene['pixel_instance_ids'][rows.ravel()[interior],
                                               cols.ravel()[interior]]
            assert interior.sum() > 0
            assert (seen >= 0).all()
            assert (seen == index).any()


def face_of_points(local, box):
    """Index into synth.BOX_FACES of the face each box-frame point is on."""
    gap = box[3:6] / 2 - np.abs(local)
    axis = gap.argmin(1)
    negative = local[np.arange(len(local)), axis] < 0
    return 2 * axis + negative


def test_image_is_consistent_with_points(few_scenes):
    room_hits, box_hits, box_near_hits, box_total = [], 0, 0, 0
    for scene in few_scenes:
        image = scene['image'].astype(np.int64)
        height, width = image.shape[:2]
        xyz = scene['points'][:, :3].astype(np.float64)
        colour = np.round(scene['points'][:, 3:] * 255).astype(
            np.int64)[:, ::-1]  # BGR
        uv, _ = project(xyz, scene['depth2img'])
        pixel = np.round(uv).astype(np.int64)
        seen = image[pixel[:, 1], pixel[:, 0]]
        same = (seen == colour).all(1)
        owner = scene['point_instance_ids']
        pixel_owner = scene['pixel_instance_ids'][pixel[:, 1], pixel[:, 0]]
        # Floor / wall points are where the camera sees the room.
        room = owner < 0
        assert (pixel_owner[room] == -1).mean() > 0.98
        room_hits.append(same[room].mean())
        # Box points on front-facing faces whose pixel shows their box: the
        # pixel has the colour of their face (exactly, but at face edges).
        # Faces seen edge-on (under a pixel wide) are left out.
        for index, box in enumerate(boxes_of(scene)):
            own = owner == index
            face = face_of_points(to_box_frame(xyz[own], box), box)
            normals = synth.box_face_normals(box)[face]
            view = -xyz[own] / np.linalg.norm(xyz[own], axis=1, keepdims=True)
            front = (normals * view).sum(1) > 0.15
            unoccluded = front & (pixel_owner[own] == index)
            box_total += unoccluded.sum()
            box_hits += same[own][unoccluded].sum()
            near = np.zeros(unoccluded.sum(), bool)
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    rows = np.clip(pixel[own][unoccluded, 1] + dy, 0,
                                   height - 1)
                    cols = np.clip(pixel[own][unoccluded, 0] + dx, 0,
                                   width - 1)
                    near |= (image[rows,
                                   cols] == colour[own][unoccluded]).all(1)
            box_near_hits += near.sum()
    assert min(room_hits) > 0.98
    assert box_total > 500
    assert box_hits / box_total > 0.9
    assert box_near_hits / box_total > 0.98


def chroma(rgb):
    rgb = np.asarray(rgb, np.float64)
    return rgb / rgb.sum(-1, keepdims=True)


def test_box_top_pixel_has_the_class_colour():
    checked = set()
    class_chroma = {
        name: chroma(colour)
        for name, colour in synth.CLASS_COLOURS.items()
    }
    for scene in scenes(12):
        for index, inst in enumerate(scene['instances']):
            x, y, z, dx, dy, dz, yaw = inst['bbox_3d']
            top = z + dz / 2
            if top > -0.05:  # the camera does not see this top
                continue
            uv, _ = project(np.array([[x, y, top - 1e-3]]), scene['depth2img'])
            col, row = np.round(uv[0]).astype(int)
            height, width = scene['pixel_instance_ids'].shape
            if not (0 <= col < width and 0 <= row < height) or (
                    scene['pixel_instance_ids'][row, col] != index):
                continue  # outside the image or occluded
            pixel_rgb = scene['image'][row, col, ::-1]
            name = synth.SUNRGBD_CLASSES[inst['bbox_label_3d']]
            distances = {
                other: np.abs(chroma(pixel_rgb) - value).sum()
                for other, value in class_chroma.items()
            }
            assert min(distances, key=distances.get) == name
            # The top face is lit: brighter than the ambient level.
            assert pixel_rgb.sum() > synth.AMBIENT * sum(
                synth.CLASS_COLOURS[name]) * 0.9
            checked.add(name)
    assert set(synth.SAME_GEOMETRY_PAIR) <= checked


def test_same_geometry_pair_has_one_size_distribution():
    first, second = synth.SAME_GEOMETRY_PAIR
    assert first in synth.SYNTHETIC_CLASSES
    assert second in synth.SYNTHETIC_CLASSES
    assert synth.SYNTHETIC_MEAN_SIZES[first] == \
        synth.SYNTHETIC_MEAN_SIZES[second]
    # Their colours differ strongly.
    assert np.abs(
        chroma(synth.CLASS_COLOURS[first]) -
        chroma(synth.CLASS_COLOURS[second])).sum() > 0.5
    # The other classes are geometrically distinct: on some dimension their
    # size ranges do not overlap those of the pair.
    jitter = synth.SIZE_JITTER
    pair_mean = np.asarray(synth.SYNTHETIC_MEAN_SIZES[first])
    for name in synth.SYNTHETIC_CLASSES:
        if name in synth.SAME_GEOMETRY_PAIR:
            continue
        mean = np.asarray(synth.SYNTHETIC_MEAN_SIZES[name])
        disjoint = (mean * (1 - jitter) > pair_mean * (1 + jitter)) | (
            mean * (1 + jitter) < pair_mean * (1 - jitter))
        assert disjoint.any(), name
    # Observed sizes: both classes of the pair fill the same range, with
    # the same mean (relative to the shared mean size).
    sizes = {first: [], second: []}
    for scene in scenes(40, image_size=(48, 36), num_points=200):
        for inst in scene['instances']:
            name = synth.SUNRGBD_CLASSES[inst['bbox_label_3d']]
            if name in sizes:
                sizes[name].append(np.asarray(inst['bbox_3d'][3:6]))
    ratios = {
        name: np.stack(values) / pair_mean
        for name, values in sizes.items()
    }
    for name, ratio in ratios.items():
        assert len(ratio) >= 10, name
        assert (ratio >= 1 - jitter - 1e-9).all()
        assert (ratio <= 1 + jitter + 1e-9).all()
    np.testing.assert_allclose(
        ratios[first].mean(0), ratios[second].mean(0), atol=0.06)


# ------------------------------------------------------------- generation

TINY = dict(num_train=3, num_val=2, image_size=(64, 48), num_points=300)


def test_generation_is_deterministic(tmp_path):
    root_a = synth.generate_synthetic_indoor(str(tmp_path / 'a'), **TINY)
    root_b = synth.generate_synthetic_indoor(str(tmp_path / 'b'), **TINY)
    digests = file_digests(root_a)
    assert digests == file_digests(root_b)
    assert sorted(name for name in digests if name.endswith('.bin')) == [
        f'points/{i:06d}.bin' for i in range(5)
    ]
    assert len([name for name in digests if name.endswith('.jpg')]) == 5
    # Another seed, other scenes; the val split does not depend on the
    # size of the train split.
    root_c = synth.generate_synthetic_indoor(
        str(tmp_path / 'c'), **{
            **TINY, 'seed': 1
        })
    assert file_digests(root_c)['points/000000.bin'] != \
        digests['points/000000.bin']
    root_d = synth.generate_synthetic_indoor(
        str(tmp_path / 'd'), **{
            **TINY, 'num_train': 1
        })
    np.testing.assert_array_equal(
        np.fromfile(osp.join(root_d, 'points', '000001.bin'), np.float32),
        np.fromfile(osp.join(root_a, 'points', '000003.bin'), np.float32))


def test_info_format(tmp_path):
    root = synth.generate_synthetic_indoor(str(tmp_path / 'set'), **TINY)
    with open(osp.join(root, 'synthetic_infos_train.pkl'), 'rb') as f:
        infos = pickle.load(f)
    assert set(infos) == {'metainfo', 'data_list'}
    assert infos['metainfo']['categories'] == {
        name: i
        for i, name in enumerate(SUNRGBDDataset.METAINFO['classes'])
    }
    assert infos['metainfo']['info_version'] == '1.1'
    assert 'dataset' in infos['metainfo']
    assert len(infos['data_list']) == 3
    info = infos['data_list'][1]
    assert info['sample_idx'] == 1
    assert info['lidar_points'] == dict(
        num_pts_feats=6, lidar_path='000001.bin')
    cam = info['images']['CAM0']
    assert (cam['img_path'], cam['height'], cam['width']) == ('000001.jpg', 48,
                                                              64)
    assert np.asarray(cam['depth2img']).shape == (3, 3)
    points = np.fromfile(osp.join(root, 'points', '000001.bin'),
                         np.float32).reshape(-1, 6)
    assert points.shape == (300, 6)
    image = cv2.imread(osp.join(root, 'images', '000001.jpg'))
    assert image.shape == (48, 64, 3)
    with open(osp.join(root, 'synthetic_infos_val.pkl'), 'rb') as f:
        val = pickle.load(f)
    assert [info['sample_idx'] for info in val['data_list']] == [3, 4]


def test_generation_reuses_regenerates_and_refuses(tmp_path):
    root = str(tmp_path / 'set')
    synth.generate_synthetic_indoor(root, **TINY)
    marker = osp.join(root, 'synthetic_meta.json')
    stamp = os.stat(marker).st_mtime_ns
    synth.generate_synthetic_indoor(root, **TINY)  # complete: reused
    assert os.stat(marker).st_mtime_ns == stamp
    synth.generate_synthetic_indoor(root, **{**TINY, 'num_val': 1})
    assert len(os.listdir(osp.join(root, 'points'))) == 4
    assert not [name for name in os.listdir(tmp_path) if name != 'set']
    foreign = tmp_path / 'foreign'
    foreign.mkdir()
    (foreign / 'keep.txt').write_text('not ours')
    with pytest.raises(FileExistsError, match='synthetic_meta.json'):
        synth.generate_synthetic_indoor(str(foreign), **TINY)
    with pytest.raises(ValueError, match='num_train'):
        synth.generate_synthetic_indoor(str(tmp_path / 'x'), -1, 1)
    with pytest.raises(ValueError, match='image_size'):
        synth.generate_synthetic_indoor(
            str(tmp_path / 'x'), 1, 1, image_size=(64, ))


def _generate_in_child(root):
    synth.generate_synthetic_indoor(root, **TINY)


@pytest.mark.skipif(
    'fork' not in multiprocessing.get_all_start_methods(),
    reason='needs the fork start method')
def test_concurrent_generation(tmp_path):
    root = str(tmp_path / 'set')
    context = multiprocessing.get_context('fork')
    workers = [
        context.Process(target=_generate_in_child, args=(root, ))
        for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    reference = synth.generate_synthetic_indoor(
        str(tmp_path / 'reference'), **TINY)
    assert file_digests(root) == file_digests(reference)
    assert sorted(os.listdir(tmp_path)) == ['reference', 'set']


def pipeline(test_mode=False):
    """SUN RGB-D loading as in mmdet3d's ImVoteNet configs (test: no
    annotations; the metric reads ``eval_ann_info``)."""
    keys = ['points', 'img']
    annotations = []
    if not test_mode:
        keys += [
            'gt_bboxes_3d', 'gt_labels_3d', 'gt_bboxes', 'gt_bboxes_labels'
        ]
        annotations = [
            dict(
                type='LoadAnnotations3D',
                with_bbox_3d=True,
                with_label_3d=True,
                with_bbox=True,
                with_label=True)
        ]
    return [
        dict(
            type='LoadPointsFromFile',
            coord_type='DEPTH',
            load_dim=6,
            use_dim=[0, 1, 2]),
        dict(type='mmdet.LoadImageFromFile'), *annotations,
        dict(type='Pack3DDetInputs', keys=keys)
    ]


def check_sample(sample, info, root):
    inputs, data_sample = sample['inputs'], sample['data_samples']
    assert inputs['points'].shape == (300, 3)
    assert inputs['img'].shape == (3, 48, 64)
    raw = np.fromfile(
        osp.join(root, 'points', info['lidar_points']['lidar_path']),
        np.float32).reshape(-1, 6)
    np.testing.assert_allclose(inputs['points'].numpy(), raw[:, :3])
    np.testing.assert_allclose(data_sample.depth2img,
                               info['images']['CAM0']['depth2img'])
    gt_3d = data_sample.gt_instances_3d
    stored = np.array([inst['bbox_3d'] for inst in info['instances']])
    assert isinstance(gt_3d.bboxes_3d, DepthInstance3DBoxes)
    # SUNRGBDDataset turns the gravity centres into bottom centres.
    np.testing.assert_allclose(
        gt_3d.bboxes_3d.gravity_center.numpy(), stored[:, :3], atol=1e-5)
    np.testing.assert_allclose(
        gt_3d.bboxes_3d.tensor[:, 2].numpy(),
        stored[:, 2] - stored[:, 5] / 2,
        atol=1e-5)
    assert gt_3d.labels_3d.tolist() == [
        inst['bbox_label_3d'] for inst in info['instances']
    ]
    np.testing.assert_allclose(
        data_sample.gt_instances.bboxes.numpy(),
        [inst['bbox'] for inst in info['instances']],
        atol=1e-4)
    assert data_sample.gt_instances.labels.tolist() == [
        inst['bbox_label'] for inst in info['instances']
    ]


def test_loads_with_mmdet3d_sunrgbd_dataset(tmp_path):
    root = synth.generate_synthetic_indoor(str(tmp_path / 'set'), **TINY)
    with open(osp.join(root, 'synthetic_infos_train.pkl'), 'rb') as f:
        infos = pickle.load(f)['data_list']
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        dataset = SUNRGBDDataset(
            data_root=root,
            ann_file='synthetic_infos_train.pkl',
            data_prefix=dict(pts='points', img='images'),
            pipeline=pipeline())
        assert len(dataset) == 3
        for index in range(3):
            check_sample(dataset[index], infos[index], root)


def test_synthetic_dataset_generates_and_loads(tmp_path):
    root = str(tmp_path / 'set')
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        train = DATASETS.build(
            dict(
                type='SyntheticIndoorDataset',
                data_root=root,
                pipeline=pipeline(),
                **TINY))
        val = DATASETS.build(
            dict(
                type='SyntheticIndoorDataset',
                data_root=root,
                pipeline=pipeline(test_mode=True),
                test_mode=True,
                **TINY))
        assert train.metainfo['classes'] == SUNRGBDDataset.METAINFO['classes']
        assert (len(train), len(val)) == (3, 2)
        with open(osp.join(root, 'synthetic_infos_train.pkl'), 'rb') as f:
            infos = pickle.load(f)['data_list']
        check_sample(train[0], infos[0], root)
        sample = val[1]
        assert sample['inputs']['points'].shape == (300, 3)
        assert sample['data_samples'].img_path.endswith('000004.jpg')
        with open(osp.join(root, 'synthetic_infos_val.pkl'), 'rb') as f:
            val_infos = pickle.load(f)['data_list']
        assert val.get_data_info(
            1)['eval_ann_info']['gt_labels_3d'].tolist() == [
                inst['bbox_label_3d'] for inst in val_infos[1]['instances']
            ]
        # Training on the 5 classes that occur maps labels to 0..4.
        subset = DATASETS.build(
            dict(
                type='SyntheticIndoorDataset',
                data_root=root,
                metainfo=dict(classes=synth.SYNTHETIC_CLASSES),
                pipeline=pipeline(),
                **TINY))
        labels = subset[0]['data_samples'].gt_instances_3d.labels_3d
        names = [
            synth.SUNRGBD_CLASSES[inst['bbox_label_3d']]
            for inst in infos[0]['instances']
        ]
        assert labels.tolist() == [
            synth.SYNTHETIC_CLASSES.index(name) for name in names
        ]


# ---------------------------------------------------------------- drawing


def unit_box_projection():
    """Corners of a yaw-0 unit box in mmdet3d's order, drawn with an oblique
    parallel projection onto a 100x80 image; and its true edge list."""
    box = DepthInstance3DBoxes(torch.tensor([[0.5, 0.5, 0., 1., 1., 1., 0.]]))
    corners = box.corners[0].numpy()
    uv = np.stack([
        20 + 40 * corners[:, 0] + 16 * corners[:, 1],
        70 - 40 * corners[:, 2] - 12 * corners[:, 1]
    ], 1)
    edges = [(i, j) for i in range(8) for j in range(i + 1, 8)
             if np.isclose(np.abs(corners[i] - corners[j]).sum(), 1)]
    assert len(edges) == 12
    return uv, edges


def distance_to_segments(shape, segments):
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    pixels = np.stack([cols, rows], -1).astype(np.float64)
    best = np.full(shape, np.inf)
    for start, end in segments:
        delta = end - start
        t = np.clip(((pixels - start) @ delta) / (delta @ delta), 0, 1)
        nearest = start + t[..., None] * delta
        best = np.minimum(best, np.linalg.norm(pixels - nearest, axis=-1))
    return best


def changed(a, b):
    return (a != b).any(-1)


def test_draws_the_12_edges_and_nothing_else():
    uv, edges = unit_box_projection()
    image = np.full((80, 100, 3), 40, np.uint8)
    original = image.copy()
    colour = (0, 255, 255)
    drawn = draw_projected_boxes(image, uv[None], np.ones((1, 8), bool),
                                 np.array([0]), ['chair'], None, [colour])
    np.testing.assert_array_equal(image, original)  # input untouched
    distance = distance_to_segments(image.shape[:2],
                                    [(uv[i], uv[j]) for i, j in edges])
    # Along every edge, the nearest pixel is coloured.
    for i, j in edges:
        for t in np.linspace(0.05, 0.95, 15):
            col, row = np.round(uv[i] + t * (uv[j] - uv[i])).astype(int)
            window = drawn[row - 1:row + 2, col - 1:col + 2]
            assert (window == colour).all(-1).any(), (i, j, t)
    # Face diagonals are not edges: nothing drawn away from the edges, but
    # in the tag at the top-most corner.
    top = uv[np.argmin(uv[:, 1])]
    x1, y1, x2, y2 = tag_rectangle(top, 'chair', image.shape)
    in_tag = np.zeros(image.shape[:2], bool)
    in_tag[max(y1 - 1, 0):y2 + 2, max(x1 - 1, 0):x2 + 2] = True
    diff = changed(drawn, original)
    assert not (diff & (distance > 1.5) & ~in_tag).any()
    assert diff[in_tag].mean() > 0.5  # the tag is there


def test_score_in_tag_and_palette_per_label():
    uv, _ = unit_box_projection()
    image = np.zeros((80, 100, 3), np.uint8)
    palette = [(255, 0, 0), (0, 0, 255)]
    with_label_1 = draw_projected_boxes(image, uv[None], np.ones(
        (1, 8), bool), [1], ['a', 'b'], np.array([0.5]), palette)
    assert (with_label_1 == palette[1]).all(-1).sum() > 50
    assert not (with_label_1 == palette[0]).all(-1).any()
    no_score = draw_projected_boxes(image, uv[None], np.ones((1, 8), bool),
                                    [1], ['a', 'b'], None, palette)
    assert changed(with_label_1, no_score).any()  # '0.50' was written


def test_invalid_corners_draw_nothing():
    uv, edges = unit_box_projection()
    image = np.full((80, 100, 3), 40, np.uint8)
    none_valid = draw_projected_boxes(image, uv[None], np.zeros((1, 8), bool),
                                      [0], ['chair'])
    np.testing.assert_array_equal(none_valid, image)
    # Corner 4 behind the camera: its 3 edges go, the 9 others stay.
    valid = np.ones((1, 8), bool)
    valid[0, 4] = False
    drawn = draw_projected_boxes(
        image, uv[None], valid, [0], ['chair'], palette=[(0, 255, 0)])
    lit = (drawn == (0, 255, 0)).all(-1)
    for i, j in edges:
        middle = np.round((uv[i] + uv[j]) / 2).astype(int)
        window = lit[middle[1] - 1:middle[1] + 2, middle[0] - 1:middle[0] + 2]
        assert window.any() == (4 not in (i, j)), (i, j)


def test_boxes_outside_or_huge_are_clipped():
    uv, _ = unit_box_projection()
    image = np.zeros((80, 100, 3), np.uint8)
    outside = draw_projected_boxes(image, (uv + 500)[None],
                                   np.ones((1, 8), bool), [0], ['chair'])
    np.testing.assert_array_equal(outside, image)  # no edge, no tag
    # A corner just in front of the camera projects very far away.
    far = uv.copy()
    far[6] = (1e12, -3e11)
    drawn = draw_projected_boxes(image, far[None], np.ones((1, 8), bool), [0],
                                 ['chair'])
    assert changed(drawn, image).any()


def test_empty_and_bad_inputs():
    image = np.zeros((20, 30, 3), np.uint8)
    empty = draw_projected_boxes(image, np.zeros((0, 8, 2)),
                                 np.zeros((0, 8), bool), np.zeros(0, int),
                                 ['chair'])
    np.testing.assert_array_equal(empty, image)
    uv, _ = unit_box_projection()
    valid = np.ones((1, 8), bool)
    with pytest.raises(ValueError, match='corners_uv'):
        draw_projected_boxes(image, uv, valid, [0], ['chair'])
    with pytest.raises(ValueError, match='corner_valid'):
        draw_projected_boxes(image, uv[None], valid[:, :4], [0], ['chair'])
    with pytest.raises(ValueError, match='labels'):
        draw_projected_boxes(image, uv[None], valid, [3], ['chair'])
    with pytest.raises(ValueError, match='image'):
        draw_projected_boxes(image[..., 0], uv[None], valid, [0], ['chair'])
    with pytest.raises(ValueError, match='palette'):
        draw_projected_boxes(
            image, uv[None], valid, [0], ['a', 'b'], palette=[(0, 0, 255)])


def test_generation_into_a_root_with_a_trailing_slash(tmp_path):
    """As configs write data_root ('data/synthetic_indoor/')."""
    root = str(tmp_path / 'set') + '/'
    synth.generate_synthetic_indoor(root, **TINY)
    for name in ('synthetic_infos_train.pkl', 'synthetic_infos_val.pkl',
                 'synthetic_meta.json', 'points/000000.bin'):
        assert osp.isfile(osp.join(root, name)), name
    assert sorted(os.listdir(tmp_path)) == ['set']  # no temporary left over
