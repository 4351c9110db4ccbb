"""Turn the inferencer's inputs (file paths and an mmdet3d info file) into
checked scans and then into the sample dicts the config's test pipeline
reads, as the datasets would produce them.

One scan is a dict with ``points`` (path of a float32 ``.bin``), ``img``
and its calibration:

- single image (SUN RGB-D layout, ``depth2img``): ``img`` is the image file;
  the calibration is ``infos`` (an mmdet3d v2 info file; the entry whose
  ``images[cam_type].img_path`` has the image's file name) or ``depth2img``
  (the matrix, or a text file holding it);
- posed views (ScanNet layout, ``lidar2img`` per view): ``img`` is the folder
  the entry's view paths are relative to, or a list of view files; the
  calibration is ``infos`` (the entry whose ``lidar_points.lidar_path`` has
  the points' file name, with the per-view ``images`` list written by
  ``tools/dataset_converters/scannet_posed_images.py``).

Every problem is an error naming the input, file or key and what was
expected; nothing is guessed.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import mmcv
import mmengine
import numpy as np

from ..datasets.scannet_multiview import CONVERTER, views_to_arrays

# SUN RGB-D's camera in mmdet3d's info files (mmdet3d's inferencer defaults
# to KITTI's CAM2)
DEFAULT_CAM_TYPE = 'CAM0'
SCAN_KEYS = ('points', 'img')
PROJECTION_SHAPES = ((3, 3), (3, 4), (4, 4))

Scan = Dict[str, object]


def check_points_file(path, load_dim: int, where: str) -> str:
    """``path`` if it is a file of whole float32 records of ``load_dim``
    values (what ``LoadPointsFromFile`` reshapes it to)."""
    if not isinstance(path, str):
        raise TypeError(f'{where}: points must be the path of a float32 '
                        f'.bin file, got {type(path).__name__}')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{where}: points file {path} does not exist')
    size = osp.getsize(path)
    record = 4 * load_dim
    if size == 0 or size % record:
        raise ValueError(
            f'{path}: {size} bytes is not a whole, non-zero number of '
            f'points; the config loads float32 records of {load_dim} '
            f'values ({record} bytes each, LoadPointsFromFile.load_dim)')
    return path


def check_image_file(path, where: str, decode: bool = True) -> str:
    """``path`` if it is a file (and, with ``decode``, an image mmcv can
    read)."""
    if not isinstance(path, str):
        raise TypeError(f'{where}: an image must be given as a file path, '
                        f'got {type(path).__name__}')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{where}: image {path} does not exist')
    if decode and mmcv.imread(path) is None:
        raise ValueError(f'{path}: not a readable image')
    return path


def as_projection(value, what: str) -> np.ndarray:
    """A finite 3x3, 3x4 or 4x4 projection matrix as float32 (the dtype the
    datasets store). ``value`` may be the path of a text file holding it."""
    source = value
    if isinstance(value, str):
        if not osp.isfile(value):
            raise FileNotFoundError(f'{what}: file {value} does not exist')
        try:
            value = np.loadtxt(value, ndmin=2)
        except ValueError as err:
            raise ValueError(f'{what}: {source} is not a text file of '
                             f'numbers ({err})') from None
        what = f'{what} ({source})'
    try:
        matrix = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f'{what} must be a numeric matrix, got '
                        f'{type(value).__name__}') from None
    if matrix.shape not in PROJECTION_SHAPES:
        raise ValueError(f'{what} must be 3x3, 3x4 or 4x4, got shape '
                         f'{matrix.shape}')
    if not np.isfinite(matrix).all():
        raise ValueError(f'{what} has non-finite values')
    return matrix.astype(np.float32)


class InfoFile:
    """The entries of one mmdet3d v2 info file, indexed by image and points
    file name."""

    def __init__(self, path) -> None:
        if not isinstance(path, str):
            raise TypeError('infos must be the path of an mmdet3d info file, '
                            f'got {type(path).__name__}')
        if not osp.isfile(path):
            raise FileNotFoundError(f'infos file {path} does not exist')
        try:
            infos = mmengine.load(path)
        except Exception as err:  # any reader failure: name the file
            raise ValueError(f'{path}: not a readable info file '
                             f'({type(err).__name__}: {err})') from None
        if not isinstance(infos, dict) or not isinstance(
                infos.get('data_list'), list):
            raise ValueError(
                f"{path}: expected mmdet3d's v2 info layout, a dict with a "
                f"'data_list' list of entries; got {type(infos).__name__}" +
                (f' with keys {sorted(infos)}' if isinstance(infos, dict
                                                             ) else ''))
        self.path = path
        self.entries: List[dict] = infos['data_list']
        if not self.entries:
            raise ValueError(f'{path}: its data_list is empty')

    def _named(self, name: str, names: List[Optional[str]], what: str):
        matches = [i for i, other in enumerate(names) if other == name]
        if len(matches) > 1:
            raise ValueError(f'{self.path}: entries {matches} all have '
                             f'{what} {name}; which calibration is meant is '
                             'ambiguous')
        return matches[0] if matches else None

    def image_names(self, cam_type: str) -> List[Optional[str]]:
        names = []
        for entry in self.entries:
            images = entry.get('images')
            camera = images.get(cam_type) if isinstance(images, dict) else None
            names.append(
                osp.basename(camera['img_path']) if isinstance(camera, dict)
                and camera.get('img_path') else None)
        return names

    def points_names(self) -> List[Optional[str]]:
        return [
            osp.basename(entry['lidar_points']['lidar_path'])
            if isinstance(entry.get('lidar_points'), dict)
            and entry['lidar_points'].get('lidar_path') else None
            for entry in self.entries
        ]

    def entry_of_image(self, image: str, cam_type: str) -> dict:
        """The entry whose ``images[cam_type].img_path`` has the file name
        of ``image`` (mmdet3d's multi-modality inferencer pairs them so)."""
        names = self.image_names(cam_type)
        if not any(names):
            cameras = sorted({
                cam
                for entry in self.entries
                if isinstance(entry.get('images'), dict)
                for cam in entry['images']
            })
            raise KeyError(f'{self.path}: no entry has images.{cam_type}.'
                           f'img_path (cameras in the file: {cameras}); '
                           'pass the camera as cam_type')
        index = self._named(osp.basename(image), names, 'image')
        if index is None:
            known = [n for n in names if n][:5]
            raise KeyError(
                f'{self.path}: no entry for image {osp.basename(image)} '
                f'(images.{cam_type}.img_path of its {len(names)} entries: '
                f'{known}{" ..." if len(names) > 5 else ""}); the '
                "calibration of a scan is its image's entry")
        return self.entries[index]

    def entry_of_points(self, points: str) -> dict:
        """The entry whose ``lidar_points.lidar_path`` has the file name of
        ``points``."""
        names = self.points_names()
        index = self._named(osp.basename(points), names, 'points file')
        if index is None:
            known = [n for n in names if n][:5]
            raise KeyError(
                f'{self.path}: no entry for points {osp.basename(points)} '
                f'(lidar_points.lidar_path of its {len(names)} entries: '
                f'{known}{" ..." if len(names) > 5 else ""})')
        return self.entries[index]


class ScanReader:
    """Checks the inputs of one inferencer call and resolves their
    calibration.

    Args:
        load_dim (int): Values per point of the config's
            ``LoadPointsFromFile``.
        multi_view (bool): The config loads posed views
            (``LoadMultiViewPosedImages``) instead of one image.
        needs_alignment (bool): The test pipeline has ``GlobalAlignment``,
            which reads the entry's ``axis_align_matrix``.
        cam_type (str): Camera of the single-image entries.
    """

    def __init__(self, load_dim: int, multi_view: bool, needs_alignment: bool,
                 cam_type: str) -> None:
        self.load_dim = load_dim
        self.multi_view = multi_view
        self.needs_alignment = needs_alignment
        self.cam_type = cam_type
        self.calib_keys = ('infos', ) if multi_view else ('infos', 'depth2img')
        self._info_files: Dict[str, InfoFile] = {}

    def info_file(self, path) -> InfoFile:
        if isinstance(path, str) and path in self._info_files:
            return self._info_files[path]
        info_file = InfoFile(path)
        self._info_files[path] = info_file
        return info_file

    # ---------------------------------------------------------------- inputs
    def read(self, inputs: Union[dict, Sequence[dict]]) -> List[Scan]:
        """Checked scans of a dict (one scan, or folders standing for every
        entry of its info file) or a list of dicts."""
        if isinstance(inputs, dict):
            if isinstance(inputs.get('points'), str) and osp.isdir(
                    inputs['points']):
                return self._read_folders(inputs)
            return [self._read_one(inputs, 'input')]
        if isinstance(inputs, (list, tuple)):
            if not inputs:
                raise ValueError('inputs: the list is empty')
            scans = []
            for index, item in enumerate(inputs):
                where = f'inputs[{index}]'
                if not isinstance(item, dict):
                    raise TypeError(f'{where}: expected a dict(points=..., '
                                    f'img=..., infos=...), got '
                                    f'{type(item).__name__}')
                if isinstance(item.get('points'), str) and osp.isdir(
                        item['points']):
                    raise ValueError(
                        f'{where}: points {item["points"]} is a folder; '
                        'folders are taken as a dict input on their own, '
                        'not inside a list')
                scans.append(self._read_one(item, where, index))
            return scans
        raise TypeError('inputs must be a dict(points=..., img=..., '
                        'infos=...) or a list of such dicts, got '
                        f'{type(inputs).__name__}')

    def _check_keys(self, item: dict, where: str) -> str:
        """The calibration key of ``item`` after checking its keys."""
        allowed = SCAN_KEYS + self.calib_keys
        missing = [key for key in SCAN_KEYS if key not in item]
        if missing:
            raise KeyError(
                f'{where}: no {" or ".join(missing)}; a scan needs points '
                '(float32 .bin), img (' +
                ('the views' if self.multi_view else 'the image') +
                f') and its calibration ({" or ".join(self.calib_keys)})')
        extra = sorted(set(item) - set(allowed))
        if extra:
            raise KeyError(f'{where}: unknown keys {extra}; a scan has '
                           f'{list(allowed)}')
        given = [key for key in self.calib_keys if key in item]
        if not given:
            raise KeyError(
                f'{where}: no calibration; give ' +
                ' or '.join(self.calib_keys) +
                (' (a matrix or a text file)' if not self.multi_view else
                 ' (the info file with the per-view images written by '
                 f'{CONVERTER})'))
        if len(given) > 1:
            raise KeyError(f'{where}: both {given[0]} and {given[1]} given; '
                           'give one calibration')
        return given[0]

    def _read_one(self, item: dict, where: str, index: int = 0) -> Scan:
        calib_key = self._check_keys(item, where)
        points = check_points_file(item['points'], self.load_dim, where)
        if self.multi_view:
            return self._read_views(item, points, where, index)
        image = item['img']
        if not isinstance(image, str):
            raise TypeError(f'{where}: the config loads one image per scan; '
                            'img must be its file path, got '
                            f'{type(image).__name__}')
        check_image_file(image, where)
        if calib_key == 'depth2img':
            depth2img = as_projection(item['depth2img'], f'{where}: depth2img')
        else:
            info_file = self.info_file(item['infos'])
            entry = info_file.entry_of_image(image, self.cam_type)
            self._check_entry_points(info_file, entry, points)
            camera = entry['images'][self.cam_type]
            if 'depth2img' not in camera:
                raise KeyError(
                    f'{info_file.path}: images.{self.cam_type} of '
                    f'{osp.basename(image)} has no depth2img (keys: '
                    f'{sorted(camera)}), the calibration the model '
                    "projects points with; mmdet3d's SUN RGB-D converter "
                    'writes it')
            depth2img = as_projection(
                camera['depth2img'], f'{info_file.path}: images.'
                f'{self.cam_type}.depth2img of {osp.basename(image)}')
        return dict(
            points=points, img=image, depth2img=depth2img, sample_idx=index)

    @staticmethod
    def _check_entry_points(info_file: InfoFile, entry: dict,
                            points: str) -> None:
        """An entry that names its points file must name ``points``: else
        the calibration belongs to another scan."""
        lidar = entry.get('lidar_points')
        if isinstance(lidar, dict) and lidar.get('lidar_path') and \
                osp.basename(lidar['lidar_path']) != osp.basename(points):
            raise ValueError(
                f'{info_file.path}: the entry of this image is for points '
                f'{lidar["lidar_path"]}, not {osp.basename(points)}')

    def _read_views(self, item: dict, points: str, where: str,
                    index: int) -> Scan:
        info_file = self.info_file(item['infos'])
        entry = info_file.entry_of_points(points)
        scene = osp.splitext(osp.basename(points))[0]
        sample = f'{info_file.path}: sample {scene}'
        if 'images' not in entry:
            raise KeyError(f"{sample} has no 'images' list of posed views; "
                           f'add them with {CONVERTER}')
        arrays = views_to_arrays(entry['images'], sample)
        if not arrays['img_paths']:
            raise ValueError(f'{sample} has no posed view')
        keep, files = self._view_files(item['img'], arrays['img_paths'], where,
                                       sample)
        scan = dict(
            points=points,
            img_paths=files,
            sample_idx=index,
            **{
                key: arrays[key][keep]
                for key in ('cam2img', 'lidar2cam', 'lidar2img')
            })
        if self.needs_alignment:
            if 'axis_align_matrix' not in entry:
                raise KeyError(
                    f'{sample} has no axis_align_matrix, which the test '
                    "pipeline's GlobalAlignment needs (ScanNet's converter "
                    'writes it; an unaligned scan takes the 4x4 identity)')
            matrix = np.array(entry['axis_align_matrix'])
            if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
                raise ValueError(f'{sample}: axis_align_matrix must be a '
                                 f'finite 4x4 matrix, got shape '
                                 f'{matrix.shape}')
            scan['axis_align_matrix'] = matrix
        return scan

    @staticmethod
    def _view_files(img, view_paths: List[str], where: str, sample: str):
        """(indices of the entry's views used, their files): every view
        under a folder, or the listed files, each matched to the view whose
        relative path it ends with."""
        if isinstance(img, str):
            if not osp.isdir(img):
                raise ValueError(
                    f'{where}: the config loads posed views; img must be the '
                    'folder their paths in the infos are relative to, or a '
                    f'list of view files; {img} is not a folder')
            files = [osp.join(img, path) for path in view_paths]
            for file in files:
                check_image_file(file, f'{where} ({sample})', decode=False)
            return np.arange(len(files)), files
        if not isinstance(img, (list, tuple)) or not img:
            raise TypeError(f'{where}: img must be a folder or a non-empty '
                            f'list of view files, got {img!r}')
        relative = [osp.normpath(path) for path in view_paths]
        keep = []
        for file in img:
            check_image_file(file, where, decode=False)
            full = osp.normpath(osp.abspath(file))
            matches = [
                i for i, path in enumerate(relative)
                if full == path or full.endswith(osp.sep + path)
            ]
            if len(matches) != 1:
                raise ValueError(f'{where}: {file} is ' + (
                    'not a view of' if not matches else 'several views of') +
                                 f' {sample} (its views: {view_paths[:5]}'
                                 f'{" ..." if len(view_paths) > 5 else ""})')
            keep.append(matches[0])
        return np.array(keep), list(img)

    def _read_folders(self, item: dict) -> List[Scan]:
        """Folders of points and images: one scan per entry of the info
        file, its files named by the entry."""
        where = 'input'
        self._check_keys(item, where)
        if 'infos' not in item:
            raise KeyError(f'{where}: points {item["points"]} is a folder; '
                           'the scans of a folder are the entries of an '
                           'info file: give infos')
        if not isinstance(item['img'], str) or not osp.isdir(item['img']):
            raise ValueError(f'{where}: points is a folder, so img must be '
                             f'one too, got {item["img"]!r}')
        info_file = self.info_file(item['infos'])
        scans = []
        for index, name in enumerate(info_file.points_names()):
            if name is None:
                raise KeyError(f'{info_file.path}: entry {index} has no '
                               'lidar_points.lidar_path')
            scan = dict(
                points=osp.join(item['points'], name), infos=item['infos'])
            if self.multi_view:
                scan['img'] = item['img']
            else:
                image = info_file.image_names(self.cam_type)[index]
                if image is None:
                    raise KeyError(f'{info_file.path}: entry {index} has no '
                                   f'images.{self.cam_type}.img_path')
                scan['img'] = osp.join(item['img'], image)
            scans.append(
                self._read_one(
                    scan, f'{where} (entry {index} of '
                    f'{info_file.path})', index))
        return scans


def sample_info(scan: Scan, load_dim: int, box_type_3d, box_mode_3d) -> dict:
    """The sample dict the config's test pipeline reads, with the keys
    ``SUNRGBDDataset`` / ``MultiViewScanNetDataset`` give it (paths already
    resolved)."""
    info = dict(
        lidar_points=dict(lidar_path=scan['points'], num_pts_feats=load_dim),
        lidar_path=scan['points'],
        num_pts_feats=load_dim,
        sample_idx=scan['sample_idx'],
        box_type_3d=box_type_3d,
        box_mode_3d=box_mode_3d)
    if 'img_paths' in scan:
        info.update({
            key: scan[key]
            for key in ('img_paths', 'cam2img', 'lidar2cam', 'lidar2img')
        })
        if 'axis_align_matrix' in scan:
            info['axis_align_matrix'] = scan['axis_align_matrix']
    else:
        info.update(img_path=scan['img'], depth2img=scan['depth2img'])
    # the pipeline's transforms write into the dict: a fresh copy of the
    # arrays keeps the scan reusable
    return {
        key: value.copy() if isinstance(value, np.ndarray) else value
        for key, value in info.items()
    }
