"""Input checks that name the scan, for inputs the point ops would turn
into garbage boxes without an error."""
from typing import List, Optional

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS
from torch import Tensor


def sample_name(meta: dict) -> str:
    """How errors name a sample: its point file if the metainfo has it
    (SUN RGB-D's does not), else its index and image."""
    if meta.get('lidar_path'):
        return meta['lidar_path']
    name = f'sample {meta.get("sample_idx", "?")}'
    if isinstance(meta.get('img_path'), str):
        name += f' ({meta["img_path"]})'
    return name


def check_point_clouds(points: List[Tensor],
                       metas: List[dict],
                       min_points: Optional[int] = None) -> None:
    """Fail early, naming the scan, on point clouds the ops would silently
    turn into garbage boxes: non-finite coordinates, or fewer points than
    the first set-abstraction layer samples (an empty cloud included).

    Args:
        points (list[Tensor]): (N_i, C) per sample.
        metas (list[dict]): the samples' metainfo (for ``lidar_path``).
        min_points (int, optional): points the backbone samples first.
    """
    for cloud, meta in zip(points, metas):
        name = sample_name(meta)
        if cloud.shape[0] == 0:
            raise ValueError(f'{name}: the point cloud is empty')
        if min_points is not None and cloud.shape[0] < min_points:
            raise ValueError(
                f'{name}: {cloud.shape[0]} points, the backbone samples '
                f'{min_points} in its first layer; add '
                f'PointSample(num_points>={min_points}) to the pipeline '
                '(it draws with replacement from smaller clouds)')
        if not torch.isfinite(cloud[:, :3]).all():
            bad = int((~torch.isfinite(cloud[:, :3])).any(-1).sum())
            raise ValueError(f'{name}: {bad} of {cloud.shape[0]} points have '
                             'NaN or infinite coordinates')


@TRANSFORMS.register_module()
class CheckPointCloud(BaseTransform):
    """Stop at an empty or non-finite point cloud, naming its file (put it
    right after ``LoadPointsFromFile``; without it ``PointSample`` fails on
    an empty cloud with numpy's message and NaN coordinates flow silently
    into the point ops).

    Required keys: ``points``, ``lidar_points.lidar_path`` (or
    ``lidar_path``).
    """

    def transform(self, results: dict) -> dict:
        path = results.get('lidar_path') or results.get('lidar_points',
                                                        {}).get('lidar_path')
        points = results['points']
        cloud = points.tensor if hasattr(points, 'tensor') else \
            torch.from_numpy(np.asarray(points))
        check_point_clouds([cloud], [dict(lidar_path=path)])
        return results
