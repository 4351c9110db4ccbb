"""ScanNet v2 with the posed RGB frames of every scene (TokenFusion, Table
10: points fused with N posed views)."""
from os import path as osp
from typing import Callable, List, Optional, Union

import numpy as np
from mmdet3d.datasets import ScanNetDataset
from mmdet3d.registry import DATASETS

CONVERTER = 'tools/dataset_converters/scannet_posed_images.py'
VIEW_MATRIX_KEYS = ('cam2img', 'lidar2cam')


def views_to_arrays(views: List[dict], where: str) -> dict:
    """Stack the per-view camera dicts of one scene.

    Args:
        views (list[dict]): ``images`` of an info entry, each with
            ``img_path``, ``cam2img`` (4x4) and ``lidar2cam`` (4x4).
        where (str): info file and sample, for error messages.

    Returns:
        dict: ``img_paths`` (list of V str, as stored), ``cam2img``,
        ``lidar2cam`` and ``lidar2img = cam2img @ lidar2cam``, each
        (V, 4, 4) float32.
    """
    if not isinstance(views, (list, tuple)):
        raise TypeError(
            f'{where}: images must be a list of per-view dicts (written by '
            f'{CONVERTER}), got {type(views).__name__}')
    img_paths = []
    matrices = {key: [] for key in VIEW_MATRIX_KEYS}
    for index, view in enumerate(views):
        for key in ('img_path', ) + VIEW_MATRIX_KEYS:
            if key not in view:
                raise KeyError(f'{where}: images[{index}] has no {key!r} '
                               f'(re-run {CONVERTER})')
        img_paths.append(view['img_path'])
        for key in VIEW_MATRIX_KEYS:
            matrix = np.asarray(view[key], dtype=np.float64)
            if matrix.shape != (4, 4):
                raise ValueError(f'{where}: images[{index}].{key} must be '
                                 f'4x4, got shape {matrix.shape}')
            matrices[key].append(matrix)
    arrays = {
        key: np.stack(value) if value else np.zeros((0, 4, 4))
        for key, value in matrices.items()
    }
    # compose in float64, store float32 like the other mmdet3d calibrations
    arrays['lidar2img'] = arrays['cam2img'] @ arrays['lidar2cam']
    arrays = {key: value.astype(np.float32) for key, value in arrays.items()}
    arrays['img_paths'] = img_paths
    return arrays


@DATASETS.register_module()
class MultiViewScanNetDataset(ScanNetDataset):
    """ScanNet detection dataset whose samples carry N posed RGB frames.

    The info files come from :obj:`ScanNetDataset`'s v2 infos run through
    ``tools/dataset_converters/scannet_posed_images.py``, which adds to
    every entry ``images``: a list of per-frame dicts (``img_path``
    relative to the posed_images root, ``cam2img``, ``lidar2cam``).

    With ``modality['use_camera']`` each sample gets, for all its V frames
    (the loading transform ``LoadMultiViewPosedImages`` picks the views):

    - ``img_paths`` (list[str]): joined with ``data_prefix['img']``.
    - ``cam2img`` (np.ndarray): (V, 4, 4) float32 colour intrinsics.
    - ``lidar2cam`` (np.ndarray): (V, 4, 4) float32, aligned points ->
      camera.
    - ``lidar2img`` (np.ndarray): (V, 4, 4) float32, ``cam2img @
      lidar2cam``: projects points **after** ``GlobalAlignment`` (and
      before any augmentation) to original-size pixels.

    The raw ``images`` list is removed from the sample in every modality:
    ``Pack3DDetInputs`` reads ``images`` as a camera-name dict.

    Args:
        data_root (str): dataset root.
        ann_file (str): info file with ``images`` entries.
        data_prefix (dict): as :obj:`ScanNetDataset`, plus ``img`` (the
            posed_images folder). Defaults to ``dict(pts='points',
            pts_instance_mask='instance_mask',
            pts_semantic_mask='semantic_mask', img='posed_images')``.
        modality (dict): Defaults to ``dict(use_camera=True,
            use_lidar=True)``.
        **kwargs: the other :obj:`ScanNetDataset` arguments.
    """

    def __init__(self,
                 data_root: str,
                 ann_file: str,
                 metainfo: Optional[dict] = None,
                 data_prefix: dict = dict(
                     pts='points',
                     pts_instance_mask='instance_mask',
                     pts_semantic_mask='semantic_mask',
                     img='posed_images'),
                 pipeline: List[Union[dict, Callable]] = [],
                 modality: dict = dict(use_camera=True, use_lidar=True),
                 **kwargs) -> None:
        super().__init__(
            data_root=data_root,
            ann_file=ann_file,
            metainfo=metainfo,
            data_prefix=data_prefix,
            pipeline=pipeline,
            modality=modality,
            **kwargs)

    def _sample_name(self, info: dict) -> str:
        """The scene of a raw info entry, for error messages."""
        lidar_path = info.get('lidar_points', {}).get('lidar_path')
        if lidar_path:
            return osp.splitext(osp.basename(lidar_path))[0]
        return str(info.get('sample_idx', '?'))

    def parse_data_info(self, info: dict) -> dict:
        """Add the per-view camera data to a raw info entry.

        Args:
            info (dict): raw info entry.

        Returns:
            dict: as :meth:`ScanNetDataset.parse_data_info`, plus
            ``img_paths``, ``cam2img``, ``lidar2cam`` and ``lidar2img``
            when the camera is used.
        """
        views = info.pop('images', None)
        if self.modality['use_camera']:
            where = (f'{self.ann_file}: sample {self._sample_name(info)}')
            if views is None:
                raise KeyError(
                    f"{where} has no 'images' key, which "
                    'modality.use_camera=True needs; add the posed frames '
                    f'with {CONVERTER}')
            arrays = views_to_arrays(views, where)
            img_prefix = self.data_prefix.get('img', '')
            arrays['img_paths'] = [
                osp.join(img_prefix, path) for path in arrays['img_paths']
            ]
            info.update(arrays)
        # Det3DDataset iterates a camera-name dict when use_camera is set;
        # the per-view paths are already joined above.
        info['images'] = {}
        info = super().parse_data_info(info)
        del info['images']
        return info
