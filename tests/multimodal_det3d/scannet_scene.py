"""A mini ScanNet layout around the real scene0000_00 point cloud (made-up
camera poses, intrinsics, axis alignment and one-colour frames), converted
with tools/dataset_converters/scannet_posed_images.py: plain functions
and constants shared by the multi-view tests."""
import importlib
import os
import os.path as osp
import pickle
import shutil

import cv2
import numpy as np

from ..utils import DATA_ROOT

posed = importlib.import_module(
    'tools.dataset_converters.scannet_posed_images')

SCENE = 'scene0000_00'
FIXTURE = osp.join(DATA_ROOT, 'scannet_scene0000_00', f'{SCENE}.bin')
CLASSES = ('cabinet', 'bed', 'chair', 'sofa', 'table', 'door', 'window',
           'bookshelf', 'picture', 'counter', 'desk', 'curtain',
           'refrigerator', 'showercurtrain', 'toilet', 'sink', 'bathtub',
           'garbagebin')
NUM_FRAMES = 12
BAD_FRAME = 3  # its pose is -inf, as ScanNet marks lost tracking
IMG_W, IMG_H = 96, 64  # frames on disk
OUT_W, OUT_H = 64, 48  # img_scale of the pipeline (anisotropic resize)
# colour intrinsics of the fake camera (4x4 like ScanNet's intrinsic.txt)
K = np.array([[60., 0., 47.5, 0.], [0., 55., 31.5, 0.], [0., 0., 1., 0.],
              [0., 0., 0., 1.]])
# rotation about z by 30 degrees plus a translation (GlobalAlignment needs
# exact zeros in the z row and column)
_c, _s = np.cos(np.pi / 6), np.sin(np.pi / 6)
AXIS_ALIGN = np.array([[_c, -_s, 0., -3.2], [_s, _c, 0., -4.1],
                       [0., 0., 1., 0.25], [0., 0., 0., 1.]])


def look_at_pose(centre, target):
    """camera_to_world of an OpenCV camera (x right, y down, z forward) at
    ``centre`` looking at ``target`` (world z is up)."""
    forward = (target - centre) / np.linalg.norm(target - centre)
    right = np.cross(forward, [0., 0., 1.])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, down, forward], axis=1)
    pose[:3, 3] = centre
    return pose


def frame_colour(index):
    """BGR colour of frame ``index``: G encodes the frame."""
    return (200, 15 * index + 10, 40)


def write_matrix(path, matrix):
    # the format of extract_posed_images.py: 4 lines of '%f' numbers
    np.savetxt(path, matrix, fmt='%f')


def build_scene(root, target_world):
    """Mini ScanNet layout under ``root``; returns the raw points (N, 6)."""
    os.makedirs(root / 'points')
    shutil.copy(FIXTURE, root / 'points' / f'{SCENE}.bin')
    points = np.fromfile(FIXTURE, dtype=np.float32).reshape(-1, 6)
    rng = np.random.default_rng(0)
    for folder, values in (('instance_mask', rng.integers(0, 4, len(points))),
                           ('semantic_mask',
                            rng.choice([3, 4, 5, 40], len(points)))):
        os.makedirs(root / folder)
        values.astype(np.int64).tofile(root / folder / f'{SCENE}.bin')

    scene_dir = root / 'posed_images' / SCENE
    os.makedirs(scene_dir)
    write_matrix(scene_dir / 'intrinsic.txt', K)
    for index in range(NUM_FRAMES):
        angle = 2 * np.pi * index / NUM_FRAMES
        centre = target_world + np.array(
            [2. * np.cos(angle), 2. * np.sin(angle), 0.6])
        pose = look_at_pose(centre, target_world)
        if index == BAD_FRAME:
            pose[:] = -np.inf
        name = f'{index:05d}'
        write_matrix(scene_dir / f'{name}.txt', pose)
        img = np.empty((IMG_H, IMG_W, 3), np.uint8)
        img[:] = frame_colour(index)
        cv2.imwrite(str(scene_dir / f'{name}.jpg'), img)

    aligned = points[:, :3] @ AXIS_ALIGN[:3, :3].T + AXIS_ALIGN[:3, 3]
    centre = aligned.mean(0)
    infos = dict(
        metainfo=dict(
            categories={
                name: i
                for i, name in enumerate(CLASSES)
            },
            dataset='scannet',
            info_version='1.1'),
        data_list=[
            dict(
                lidar_points=dict(num_pts_feats=6, lidar_path=f'{SCENE}.bin'),
                pts_instance_mask_path=f'{SCENE}.bin',
                pts_semantic_mask_path=f'{SCENE}.bin',
                axis_align_matrix=AXIS_ALIGN.tolist(),
                instances=[
                    dict(
                        bbox_3d=(centre + [0.5, 0., 0.]).tolist() +
                        [0.8, 0.6, 1.0],
                        bbox_label_3d=2),
                    dict(
                        bbox_3d=(centre - [0., 0.7, 0.]).tolist() +
                        [1.5, 0.9, 0.8],
                        bbox_label_3d=4)
                ])
        ])
    with open(root / 'scannet_infos_train.pkl', 'wb') as f:
        pickle.dump(infos, f)
    return points


def build_converted_scene(root):
    """The mini layout under ``root``, its infos converted to
    ``scannet_infos_train_posed.pkl``; the known point is the scan
    centroid. Returns dict(root, points (raw, N x 6), target_aligned)."""
    raw = np.fromfile(FIXTURE, dtype=np.float32).reshape(-1, 6)
    target_world = raw[:, :3].astype(np.float64).mean(0)
    points = build_scene(root, target_world)
    posed.main([
        '--infos',
        str(root / 'scannet_infos_train.pkl'), '--posed-images',
        str(root / 'posed_images')
    ])
    target_aligned = AXIS_ALIGN @ np.append(target_world, 1.)
    return dict(root=root, points=points, target_aligned=target_aligned)
