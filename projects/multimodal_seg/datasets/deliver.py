"""DeLiVER (Zhang et al., CVPR'23): CARLA driving scenes with RGB, depth,
event and LiDAR, 25 semantic classes.

Official release layout (front view, as read by the CMNeXt and GeminiFusion
DeLiVER code)::

    DELIVER/
      img/{condition}/{split}/{sequence}/{frame}_rgb_front.png
      hha/...      {frame}_depth_front.png     3-channel HHA-style depth
      event/...    {frame}_event_front.png     event frame
      lidar/...    {frame}_lidar_front.png     projected LiDAR
      semantic/... {frame}_semantic_front.png  labels
      depth/...    (raw depth, unused by the reference; not read here)

with conditions cloud / fog / night / rain / sun and splits train / val /
test. Every other modality's file name is the RGB name with ``_rgb``
replaced by ``_depth`` / ``_event`` / ``_lidar`` / ``_semantic`` and ``img``
by the modality's folder, as the reference does.

Labels: the class is in the first (red) channel of the label PNG; the
reference maps raw 255 -> 0, then subtracts 1 in uint8, so raw 0 and 255
become the ignore index 255 and raw k (1..25) becomes class k - 1. This is
``reduce_zero_label`` of :class:`LoadValidatedAnnotations` (which also
sends 255 to ignore), with ``seg_map_channel=0`` for colour label images.
"""
import glob
import os.path as osp
from typing import List, Optional, Sequence

from mmseg.registry import DATASETS

from .multimodal_seg_dataset import MultiModalSegDataset

DELIVER_CLASSES = ('Building', 'Fence', 'Other', 'Pedestrian', 'Pole',
                   'RoadLine', 'Road', 'SideWalk', 'Vegetation', 'Cars',
                   'Wall', 'TrafficSign', 'Sky', 'Ground', 'Bridge',
                   'RailTrack', 'GroundRail', 'TrafficLight', 'Static',
                   'Dynamic', 'Water', 'Terrain', 'TwoWheeler', 'Bus', 'Truck')
DELIVER_PALETTE = [[70, 70, 70], [100, 40, 40], [55, 90, 80], [220, 20, 60],
                   [153, 153, 153], [157, 234, 50], [128, 64, 128],
                   [244, 35, 232], [107, 142, 35], [0, 0, 142],
                   [102, 102, 156], [220, 220, 0], [70, 130, 180], [81, 0, 81],
                   [150, 100, 100], [230, 150, 140], [180, 165, 180],
                   [250, 170, 30], [110, 190, 160], [170, 120, 50],
                   [45, 60, 150], [145, 170, 100], [0, 0, 230], [0, 60, 100],
                   [0, 0, 70]]
DELIVER_CONDITIONS = ('cloud', 'fog', 'night', 'rain', 'sun')
DELIVER_SPLITS = ('train', 'val', 'test')
# modality -> (folder, file-name token replacing '_rgb')
DELIVER_FILES = dict(
    depth=('hha', '_depth'),
    event=('event', '_event'),
    lidar=('lidar', '_lidar'),
    label=('semantic', '_semantic'))
RGB_FOLDER, RGB_TOKEN = 'img', '_rgb'


@DATASETS.register_module()
class DeLiVERDataset(MultiModalSegDataset):
    """DeLiVER semantic segmentation (25 classes, ignore index 255) from the
    official folder tree; the samples of a split are found by globbing
    ``img/{condition}/{split}/*/*.png`` (sorted), as the reference.

    Pipeline: ``LoadImageFromFile``, then
    ``LoadModalityImageFromFile(modality='depth')`` (the HHA image),
    ``LoadModalityImageFromFile(modality='event', resize_to_img=True)``
    (the reference resizes events to the RGB size with nearest),
    ``LoadModalityImageFromFile(modality='lidar')`` and
    ``LoadValidatedAnnotations``.

    Args:
        data_root (str): The ``DELIVER`` folder.
        split (str): ``'train'``, ``'val'`` or ``'test'``. Defaults to
            ``'train'``.
        modalities (Sequence[str]): ``'rgb'`` first, then any of
            ``'depth'``, ``'event'``, ``'lidar'`` in the order they are
            stacked. Defaults to all four.
        conditions (Sequence[str], optional): Keep only these weather /
            light conditions (e.g. ``('night', )``); all five by default.
        check_files (bool): Check at start-up that every sample has every
            configured file. Defaults to True.
        **kwargs: Passed to :class:`MultiModalSegDataset` (``pipeline``,
            ``test_mode``, ...). ``ann_file`` is not used.
    """
    METAINFO = dict(classes=DELIVER_CLASSES, palette=DELIVER_PALETTE)

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 modalities: Sequence[str] = ('rgb', 'depth', 'event',
                                              'lidar'),
                 conditions: Optional[Sequence[str]] = None,
                 **kwargs) -> None:
        if split not in DELIVER_SPLITS:
            raise ValueError(f'DeLiVERDataset: split={split!r}, expected one '
                             f'of {DELIVER_SPLITS}')
        modalities = tuple(modalities)
        if not modalities or modalities[0] != 'rgb' or any(
                m not in DELIVER_FILES or m == 'label'
                for m in modalities[1:]):
            raise ValueError(
                f'DeLiVERDataset: modalities={modalities}; expected '
                "'rgb' followed by any of ('depth', 'event', 'lidar')")
        if isinstance(conditions, str):
            conditions = (conditions, )
        conditions = tuple(conditions or DELIVER_CONDITIONS)
        unknown = [c for c in conditions if c not in DELIVER_CONDITIONS]
        if unknown:
            raise ValueError(f'DeLiVERDataset: unknown conditions {unknown}; '
                             f'expected a subset of {DELIVER_CONDITIONS}')
        self.split = split
        self.conditions = conditions
        kwargs.setdefault('reduce_zero_label', True)
        super().__init__(
            data_root=data_root,
            modalities=modalities,
            data_prefix=dict(img_path=RGB_FOLDER, seg_map_path='semantic'),
            modality_prefix={
                m: f
                for m, (f, _) in DELIVER_FILES.items()
            },
            **kwargs)

    def _sibling(self, rgb_rel: str, kind: str) -> str:
        """Path of modality / label ``kind`` of the RGB file ``rgb_rel``
        (relative to the ``img`` folder)."""
        folder, token = DELIVER_FILES[kind]
        head, name = osp.split(rgb_rel)
        return osp.join(self.data_root, folder, head,
                        name.replace(RGB_TOKEN, token, 1))

    def load_data_list(self) -> List[dict]:
        img_root = osp.join(self.data_root, RGB_FOLDER)
        files = []
        for condition in self.conditions:
            pattern = osp.join(img_root, condition, self.split, '*', '*.png')
            files += glob.glob(pattern)
        if not files:
            pattern = osp.join(img_root, '{%s}' % ','.join(self.conditions),
                               self.split, '*', '*.png')
            raise FileNotFoundError(
                f'DeLiVERDataset: no RGB image matches {pattern} (expected '
                'the official DELIVER tree under data_root)')
        data_list = []
        for path in sorted(files):
            rel = osp.relpath(path, img_root)
            if RGB_TOKEN not in osp.basename(rel):
                raise ValueError(
                    f'DeLiVERDataset: RGB file {path} has no {RGB_TOKEN!r} '
                    'in its name (expected e.g. 000123_rgb_front.png)')
            data_list.append(
                dict(
                    sample_idx=osp.splitext(rel)[0],
                    img_path=path,
                    seg_map_path=self._sibling(rel, 'label'),
                    seg_map_channel=0,
                    condition=rel.split(osp.sep)[0],
                    modalities=self.modalities,
                    modality_paths={
                        m: self._sibling(rel, m)
                        for m in self.modalities if m != 'rgb'
                    },
                    label_map=self.label_map,
                    reduce_zero_label=self.reduce_zero_label,
                    num_classes=len(self.metainfo['classes']),
                    seg_fields=[]))
        if self.check_files:
            self._check_files(data_list)
        return data_list
