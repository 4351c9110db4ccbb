"""Add ScanNet v2 posed RGB frames to mmdet3d v2 ScanNet infos.

mmdet3d 1.4's ``update_scannet_infos`` drops the camera data of ScanNet
(``# TODO support camera``). This tool puts it back, in the layout that
``MultiViewScanNetDataset`` (``projects/multimodal_det3d/datasets``) reads.

Inputs
------
``--infos``
    One or more mmdet3d v2 info files (``scannet_infos_{train,val,test}.pkl``
    from ``tools/create_data.py scannet``): a dict with ``metainfo`` and
    ``data_list``. The scene of an entry is the stem of its
    ``lidar_points.lidar_path`` (``scene0000_00.bin`` -> ``scene0000_00``);
    its ``axis_align_matrix`` (4x4) is used when present (the test split has
    none; identity is used then, as ``ScanNetDataset`` does).
``--posed-images``
    The ``posed_images/`` folder written by mmdet3d's
    ``data/scannet/extract_posed_images.py``::

        posed_images/<scene>/00000.jpg    colour frame (1296x968 in ScanNet)
        posed_images/<scene>/00000.txt    camera_to_world, 4 lines of 4
        posed_images/<scene>/intrinsic.txt  4x4 colour intrinsic matrix

    Frame names are zero-padded to 5 digits; frames are taken in name order
    and every ``<name>.jpg`` needs its ``<name>.txt`` pose.

Output
------
A copy of each info file in which every ``data_list`` entry (all other keys
kept) gets ``images``: a list with one dict per usable frame::

    img_path   '<scene>/00000.jpg', relative to the posed_images root
               (the dataset joins it with ``data_prefix['img']``)
    cam2img    4x4 list, the colour intrinsic matrix of the scene
    lidar2cam  4x4 list, inv(axis_align_matrix @ camera_to_world): it maps
               points *after* ``GlobalAlignment`` into the camera frame
    height, width  of the jpg (read from its header)

so that ``cam2img @ lidar2cam`` projects aligned points into the frame.

Rules
-----
* Frames whose pose has inf/nan entries (ScanNet marks failed tracking with
  ``-inf``) or is singular are skipped; the summary counts them.
* ``--max-views N`` keeps N frames evenly spaced over the usable ones (the
  first and the last included); by default all are kept.
* A scene with no usable frame is an error (a fusion model cannot use it);
  ``--allow-empty`` keeps it with ``images = []`` and a warning instead
  (``LoadMultiViewPosedImages`` with ``num_views > 0`` then fails on it).
* Missing scene folders, a missing ``intrinsic.txt``, a missing pose file
  and any matrix file that is not 4 rows of 4 numbers are errors naming
  the file.
* The output never replaces its input: stock ``ScanNetDataset`` +
  ``Pack3DDetInputs`` cannot handle a list-valued ``images`` key, so the
  points-only infos must stay as they are.

Example::

    python tools/dataset_converters/scannet_posed_images.py \\
        --infos data/scannet/scannet_infos_train.pkl \\
                data/scannet/scannet_infos_val.pkl \\
        --posed-images data/scannet/posed_images --max-views 50
    # -> data/scannet/scannet_infos_{train,val}_posed.pkl
"""
import argparse
import os
import os.path as osp
import warnings

import mmengine
import numpy as np
from PIL import Image
from tqdm import tqdm

INTRINSIC_FILE = 'intrinsic.txt'
FRAME_SUFFIX = '.jpg'
POSE_SUFFIX = '.txt'
DEFAULT_OUT_SUFFIX = '_posed'


class PosedImagesError(ValueError):
    """An input file is missing or malformed; the message names it."""


def read_matrix_file(path, what):
    """Read a 4x4 matrix written as 4 lines of 4 numbers.

    Args:
        path (str): text file.
        what (str): what the file is, for error messages.

    Returns:
        np.ndarray: (4, 4) float64; may hold inf/nan (checked by callers).
    """
    if not osp.isfile(path):
        raise PosedImagesError(f'{what} not found: {path}')
    try:
        matrix = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise PosedImagesError(
            f'{what} {path} is not a 4x4 matrix of numbers: {exc}') from None
    if matrix.shape != (4, 4):
        raise PosedImagesError(
            f'{what} {path} must hold 4 lines of 4 numbers, got shape '
            f'{matrix.shape}')
    return matrix


def evenly_spaced(num_items, max_items):
    """Indices of at most ``max_items`` of ``num_items`` evenly spaced items,
    first and last included (all items when ``max_items`` is None)."""
    if max_items is None or num_items <= max_items:
        return list(range(num_items))
    if max_items == 1:
        return [0]
    picks = np.linspace(0, num_items - 1, max_items)
    return [int(i) for i in np.round(picks)]


def list_frames(scene_dir):
    """Frame names (no extension) of the jpgs in ``scene_dir``, in order.

    Names are sorted numerically when they are all digits (as written by
    ``extract_posed_images.py``), otherwise lexicographically.
    """
    names = [
        name[:-len(FRAME_SUFFIX)] for name in os.listdir(scene_dir)
        if name.endswith(FRAME_SUFFIX)
    ]
    if all(name.isdigit() for name in names):
        return sorted(names, key=int)
    return sorted(names)


def image_size(path):
    """(height, width) of an image, read from its header only."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, ValueError) as exc:
        raise PosedImagesError(f'cannot read image {path}: {exc}') from None
    return height, width


def camera_extrinsic(axis_align_matrix, camera_to_world):
    """``inv(axis_align_matrix @ camera_to_world)``, or None for an unusable
    pose (inf/nan entries or singular).

    Args:
        axis_align_matrix (np.ndarray): (4, 4) raw scan -> aligned frame.
        camera_to_world (np.ndarray): (4, 4) camera -> raw scan frame.

    Returns:
        np.ndarray | None: (4, 4) aligned frame -> camera.
    """
    if not np.all(np.isfinite(camera_to_world)):
        return None
    try:
        lidar2cam = np.linalg.inv(axis_align_matrix @ camera_to_world)
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(lidar2cam)):
        return None
    return lidar2cam


def scene_views(posed_root, scene, axis_align_matrix, max_views=None):
    """Per-frame camera dicts of one scene.

    Args:
        posed_root (str): the posed_images folder.
        scene (str): scene name, e.g. 'scene0000_00'.
        axis_align_matrix (np.ndarray): (4, 4) of the scene.
        max_views (int, optional): keep at most this many usable frames,
            evenly spaced.

    Returns:
        tuple[list[dict], int]: the views (img_path, cam2img, lidar2cam,
        height, width) and the number of frames skipped for a bad pose.
    """
    scene_dir = osp.join(posed_root, scene)
    if not osp.isdir(scene_dir):
        raise PosedImagesError(
            f'posed images of scene {scene} not found: {scene_dir} (expected '
            f'the output of data/scannet/extract_posed_images.py)')
    cam2img = read_matrix_file(
        osp.join(scene_dir, INTRINSIC_FILE), f'intrinsic matrix of {scene}')
    if not np.all(np.isfinite(cam2img)):
        raise PosedImagesError(
            f'intrinsic matrix {osp.join(scene_dir, INTRINSIC_FILE)} has '
            'inf/nan entries')
    frames = list_frames(scene_dir)
    usable = []
    for name in frames:
        pose = read_matrix_file(
            osp.join(scene_dir, name + POSE_SUFFIX),
            f'camera_to_world pose of frame {name} of {scene}')
        lidar2cam = camera_extrinsic(axis_align_matrix, pose)
        if lidar2cam is not None:
            usable.append((name, lidar2cam))
    num_skipped = len(frames) - len(usable)
    views = []
    for index in evenly_spaced(len(usable), max_views):
        name, lidar2cam = usable[index]
        height, width = image_size(osp.join(scene_dir, name + FRAME_SUFFIX))
        views.append(
            dict(
                img_path=f'{scene}/{name}{FRAME_SUFFIX}',
                cam2img=cam2img.tolist(),
                lidar2cam=lidar2cam.tolist(),
                height=height,
                width=width))
    return views, num_skipped


def entry_scene(entry, info_name, index):
    """Scene name of a data_list entry: the stem of its lidar_path."""
    lidar_path = entry.get('lidar_points', {}).get('lidar_path')
    if not lidar_path:
        raise PosedImagesError(
            f'{info_name}: data_list[{index}] has no lidar_points.lidar_path '
            '(expected an mmdet3d v2 ScanNet info entry)')
    return osp.splitext(osp.basename(lidar_path))[0]


def entry_axis_align(entry, info_name, scene):
    """(4, 4) axis_align_matrix of an entry (identity when absent)."""
    if 'axis_align_matrix' not in entry:
        warnings.warn(f'{info_name}: {scene} has no axis_align_matrix; '
                      'using identity (as ScanNetDataset does)')
        return np.eye(4)
    matrix = np.asarray(entry['axis_align_matrix'], dtype=np.float64)
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise PosedImagesError(
            f'{info_name}: axis_align_matrix of {scene} must be a finite 4x4 '
            f'matrix, got shape {matrix.shape}')
    return matrix


def add_posed_images(infos,
                     posed_root,
                     max_views=None,
                     allow_empty=False,
                     info_name='infos',
                     progress=False):
    """Return a copy of v2 infos with an ``images`` list in every entry.

    Args:
        infos (dict): mmdet3d v2 infos (``metainfo``, ``data_list``).
        posed_root (str): the posed_images folder.
        max_views (int, optional): frames kept per scene (evenly spaced).
        allow_empty (bool): keep a scene without usable frames (with a
            warning) instead of failing.
        info_name (str): name of the info file, for messages.
        progress (bool): show a tqdm progress bar.

    Returns:
        tuple[dict, dict]: the new infos (input left untouched) and
        statistics (``scenes``, ``views``, ``skipped_poses``,
        ``empty_scenes``).
    """
    if not isinstance(infos, dict) or 'data_list' not in infos:
        raise PosedImagesError(
            f'{info_name}: expected an mmdet3d v2 info dict with a '
            "'data_list' key (run tools/create_data.py scannet first)")
    if max_views is not None and max_views < 1:
        raise PosedImagesError(f'max_views must be >= 1, got {max_views}')
    stats = dict(scenes=0, views=0, skipped_poses=0, empty_scenes=[])
    new_list = []
    entries = infos['data_list']
    if progress:
        entries = tqdm(entries, desc=osp.basename(info_name), unit='scene')
    for index, entry in enumerate(entries):
        scene = entry_scene(entry, info_name, index)
        axis_align = entry_axis_align(entry, info_name, scene)
        views, num_skipped = scene_views(posed_root, scene, axis_align,
                                         max_views)
        if not views:
            message = (f'{info_name}: scene {scene} has no frame with a '
                       f'finite pose in {osp.join(posed_root, scene)}')
            if not allow_empty:
                raise PosedImagesError(
                    message + ' (pass --allow-empty to keep it without '
                    'images)')
            warnings.warn(message + '; kept with images=[]')
            stats['empty_scenes'].append(scene)
        new_entry = dict(entry)
        new_entry['images'] = views
        new_list.append(new_entry)
        stats['scenes'] += 1
        stats['views'] += len(views)
        stats['skipped_poses'] += num_skipped
    new_infos = dict(infos)
    new_infos['data_list'] = new_list
    return new_infos, stats


def output_path(info_path, out=None, out_suffix=DEFAULT_OUT_SUFFIX):
    """``out`` or ``<info stem><out_suffix><ext>`` next to the input."""
    if out is None:
        stem, ext = osp.splitext(info_path)
        out = f'{stem}{out_suffix}{ext}'
    if osp.abspath(out) == osp.abspath(info_path):
        raise PosedImagesError(
            f'the output {out} would replace its input; the points-only '
            'infos must stay as they are (choose --out or --out-suffix)')
    return out


def convert(info_path,
            posed_root,
            out_path,
            max_views=None,
            allow_empty=False,
            progress=True):
    """Read one info file, add the posed images and write ``out_path``.

    Returns:
        dict: statistics, see :func:`add_posed_images`.
    """
    if not osp.isfile(info_path):
        raise PosedImagesError(f'info file not found: {info_path}')
    if not osp.isdir(posed_root):
        raise PosedImagesError(f'posed_images folder not found: {posed_root}')
    infos = mmengine.load(info_path)
    new_infos, stats = add_posed_images(
        infos,
        posed_root,
        max_views=max_views,
        allow_empty=allow_empty,
        info_name=info_path,
        progress=progress)
    out_dir = osp.dirname(osp.abspath(out_path))
    os.makedirs(out_dir, exist_ok=True)
    mmengine.dump(new_infos, out_path, file_format='pkl')
    return stats


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Add the posed RGB frames of ScanNet v2 (posed_images/ '
        'from extract_posed_images.py) to mmdet3d v2 scannet_infos_*.pkl: '
        'every entry gets images = [{img_path, cam2img, lidar2cam, height, '
        'width}, ...] with lidar2cam = inv(axis_align_matrix @ pose).')
    parser.add_argument(
        '--infos',
        nargs='+',
        required=True,
        metavar='PKL',
        help='mmdet3d v2 scannet_infos_*.pkl file(s)')
    parser.add_argument(
        '--posed-images',
        required=True,
        metavar='DIR',
        help='posed_images folder (<scene>/00000.jpg, 00000.txt, '
        'intrinsic.txt)')
    outputs = parser.add_mutually_exclusive_group()
    outputs.add_argument(
        '--out',
        metavar='PKL',
        help='output file (only with a single --infos file)')
    outputs.add_argument(
        '--out-suffix',
        default=DEFAULT_OUT_SUFFIX,
        help='suffix added to each input stem for its output '
        f'(default: {DEFAULT_OUT_SUFFIX})')
    parser.add_argument(
        '--max-views',
        type=int,
        default=None,
        metavar='N',
        help='keep at most N evenly spaced frames per scene (default: all)')
    parser.add_argument(
        '--allow-empty',
        action='store_true',
        help='keep scenes without a usable pose (images=[]) instead of '
        'failing')
    args = parser.parse_args(argv)
    if args.out is not None and len(args.infos) != 1:
        parser.error('--out needs exactly one --infos file; use '
                     '--out-suffix for several')
    if args.max_views is not None and args.max_views < 1:
        parser.error('--max-views must be >= 1')
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        outs = [
            output_path(path, args.out, args.out_suffix) for path in args.infos
        ]
        for info_path, out_path in zip(args.infos, outs):
            stats = convert(info_path, args.posed_images, out_path,
                            args.max_views, args.allow_empty)
            print(f'{out_path}: {stats["scenes"]} scenes, {stats["views"]} '
                  f'views, {stats["skipped_poses"]} frames skipped (inf/nan '
                  f'pose), {len(stats["empty_scenes"])} scenes without '
                  'images')
    except PosedImagesError as exc:
        raise SystemExit(f'scannet_posed_images.py: error: {exc}')


if __name__ == '__main__':
    main()
