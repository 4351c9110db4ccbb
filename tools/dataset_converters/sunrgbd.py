"""Convert the official SUN RGB-D release to the canonical RGB-D layout.

Inputs
------
``SUNRGBD_ROOT``
    The unpacked ``SUNRGBD.zip``: the folder holding ``kv1/``, ``kv2/``,
    ``realsense/`` and ``xtion/`` (its parent is accepted too). Every frame
    has its own scene folder, e.g. ``kv1/NYUdata/NYU0001/`` with
    ``image/NYU0001.jpg``, ``depth/NYU0001.png``, ``depth_bfx/NYU0001.png``,
    ``intrinsics.txt``, ``scene.txt``, ... Image sizes differ per sensor
    (e.g. 730x530, 640x480, 561x427) and are kept as they are.
``TOOLBOX_DIR``
    The unpacked ``SUNRGBDtoolbox.zip`` (a nested ``SUNRGBDtoolbox/``
    folder is found automatically). Files used (override with ``--meta``,
    ``--seg``, ``--split``):

    ``Metadata/SUNRGBDMeta.mat`` (MATLAB v5, read with ``scipy.io``)
        Struct array ``SUNRGBDMeta`` (1x10335), one element per frame with
        the fields ``sequenceName``, ``rgbpath``, ``depthpath``,
        ``rgbname``, ``depthname``, ``sensorType``, ``K``, ``Rtilt``, ...
        The paths are absolute paths from the authors' machine, e.g.
        ``/n/fs/sun3d/data/SUNRGBD/kv1/NYUdata/NYU0001/image/NYU0001.jpg``;
        ``sequenceName`` is the scene folder relative to the parent of
        ``SUNRGBD/`` (``SUNRGBD/kv1/NYUdata/NYU0001``). The RGB image of
        entry i is ``SUNRGBD_ROOT/<rgbpath after 'SUNRGBD/'>``, its scene
        folder is that path without ``image/<rgbname>``, and its depth is
        ``<scene folder>/<--depth-dir>/<depthname>``. Without ``rgbpath``
        the scene folder is taken from ``sequenceName`` and the image from
        ``image/<rgbname>``.
    ``Metadata/SUNRGBD2Dseg.mat`` (MATLAB v7.3 / HDF5, read with ``h5py``)
        Struct array ``SUNRGBD2Dseg`` (same order as ``SUNRGBDMeta``),
        stored as an HDF5 group whose field ``seglabel`` is a
        ``(10335, 1)`` dataset of object references; each reference points
        to the label map of one frame, stored transposed (``W x H`` in
        h5py; transposed back here). ``seglabel`` holds the standard 37
        classes (indices into ``seg37list``, 0 = unlabelled); the field
        ``seglabelall`` (indices into ``seglistall``, all raw names) is not
        used.
    ``traintestSUNRGBD/allsplit.mat`` (MATLAB v5)
        Cell arrays ``alltrain`` (5285) and ``alltest`` (5050) of scene
        folder paths (``/n/fs/sun3d/data/SUNRGBD/<scene>``, no image
        name). An entry belongs to the split whose list holds its scene
        folder; paths are compared after the ``SUNRGBD/`` component (and
        without a trailing slash). ``trainvalsplit`` is not used.

Depth PNGs are 16-bit; the toolbox reader (``readData/read3dPoints.m``)
rotates the 16 bits right by 3 (``bitor(bitshift(d, -3), bitshift(d,
16 - 3))``) and divides by 1000 to get metres (it then clips at 8 m, which is
not done here). The rotated value is the depth in millimetres and is written
as is (0 stays 0 = no measurement). ``depth/`` holds the raw sensor depth
(``SUNRGBDMeta.depthpath`` points there; ``read3dPoints_bfx.m`` swaps
``/depth/`` for ``/depth_bfx/``), ``depth_bfx/`` the hole-filled depth.
Select with ``--depth-dir`` (default ``depth``). Which one common releases
use: the RedNet and ESANet SUN RGB-D preparation scripts list
``depth_bfx/`` files (ESANet also keeps the raw depth), the VoteNet /
mmdetection3d MATLAB scripts read ``depthpath`` (``depth/``).

RGB JPEGs are decoded with OpenCV (EXIF orientation ignored, like MATLAB's
``imread``) and stored as lossless PNG. Labels: 0 -> 255, c -> c - 1
(37 classes 0..36).

Sources of these facts: the SUN RGB-D README (``SUNRGBD2Dseg(imageId)
.seglabel`` indexes ``seg37list``); ``SUNRGBDtoolbox/readData/
read3dPoints.m`` / ``read3dPoints_bfx.m``; the public Python readers of
RedNet (``RedNet_data.py``), ESANet and nicr-scene-analysis-datasets
(``SUNRGBDMeta`` via ``scipy.io.loadmat``, ``SUNRGBD2Dseg`` via ``h5py``
with ``f[seglabel[i][0]][:].transpose(1, 0)``, ``meta_dir in
split['alltrain']`` where ``meta_dir`` is ``rgbpath`` without its last two
components); the VoteNet / mmdetection3d ``extract_split.m`` (strips the
16 characters ``/n/fs/sun3d/data`` from ``alltrain`` / ``alltest`` and from
``depthpath`` before matching scene folders). Not established from a
primary source (the real files were not available here): the exact dtype
of the label maps (any integer or integral float dtype is accepted); the
form of ``sequenceName`` (only used without ``rgbpath``; with or without
the leading ``.../SUNRGBD/`` both work); whether every entry matches a
split list (RedNet / ESANet put every non-``alltrain`` entry into test; here
an unmatched entry is an error unless ``--unmatched test`` or ``skip`` is
given); and that the matching gives exactly 5285 / 5050 (a warning is
printed for a full 10335-entry run that does not).

Output (see ``_common.py``): names are the 1-based index into
``SUNRGBDMeta`` zero-padded to 6 digits (``000001`` .. ``010335``);
``train.txt`` / ``test.txt`` list them in ascending order.

Example::

    python tools/dataset_converters/sunrgbd.py data/sunrgbd_raw/SUNRGBD \\
        data/sunrgbd_raw/SUNRGBDtoolbox -o data/sunrgbd --nproc 8
"""
import argparse
import os.path as osp
import sys

import cv2
import numpy as np

if __package__:
    from . import _common as common
else:  # run as a script
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    import _common as common

NUM_CLASSES = 37
ROOT_MARKER = 'SUNRGBD'
SENSOR_DIRS = ('kv1', 'kv2', 'realsense', 'xtion')
DEFAULT_META = ('Metadata', 'SUNRGBDMeta.mat')
DEFAULT_SEG = ('Metadata', 'SUNRGBD2Dseg.mat')
DEFAULT_SPLIT = ('traintestSUNRGBD', 'allsplit.mat')
META_VAR = 'SUNRGBDMeta'
SEG_VAR = 'SUNRGBD2Dseg'
SEG_FIELD = 'seglabel'
SPLIT_VARIABLES = {'train': 'alltrain', 'test': 'alltest'}
STANDARD_SIZES = {'train': 5285, 'test': 5050}

_STATE = {}


def relative_to_root(path):
    """Part of an authors' path after its ``SUNRGBD`` component.

    ``'/n/fs/sun3d/data/SUNRGBD/kv1/NYUdata/NYU0001/'`` ->
    ``'kv1/NYUdata/NYU0001'``; returns None without such a component.
    """
    parts = [p for p in path.replace('\\', '/').split('/') if p]
    if ROOT_MARKER not in parts:
        return None
    return '/'.join(parts[parts.index(ROOT_MARKER) + 1:])


def resolve_root(root):
    """Accept the ``SUNRGBD`` folder itself or its parent."""
    has_sensor = any(osp.isdir(osp.join(root, d)) for d in SENSOR_DIRS)
    nested = osp.join(root, ROOT_MARKER)
    if not has_sensor and osp.isdir(nested):
        return nested
    return root


def resolve_toolbox(toolbox):
    """Accept ``SUNRGBDtoolbox`` or a folder holding it (zip layout)."""
    nested = osp.join(toolbox, 'SUNRGBDtoolbox')
    if not osp.isdir(osp.join(toolbox, 'Metadata')) and osp.isdir(
            osp.join(nested, 'Metadata')):
        return nested
    return toolbox


def _string_field(mat, field):
    values = list(mat.struct_field(META_VAR, field))
    for i, value in enumerate(values, 1):
        if not isinstance(value, str):
            raise common.ConversionError(
                f'{mat.path}: {META_VAR}({i}).{field} is not a string')
    return values


def read_meta(meta_path, root, depth_dir):
    """Per-entry scene folder (relative) and RGB / depth file paths."""
    with common.MatFile(meta_path, 'SUNRGBDMeta.mat (--meta)') as mat:
        fields = mat.struct_fields(META_VAR)
        if 'rgbpath' in fields:
            source = 'rgbpath'
            rgb_rel = [relative_to_root(p) for p in _string_field(mat, source)]
            scenes = [p and osp.dirname(osp.dirname(p)) for p in rgb_rel]
        else:
            source = 'sequenceName'
            scenes = [
                relative_to_root(s)
                if ROOT_MARKER in s.split('/') else s.strip('/')
                for s in _string_field(mat, source)
            ]
            rgb_rel = [
                f'{s}/image/{n}'
                for s, n in zip(scenes, _string_field(mat, 'rgbname'))
            ]
        if 'depthname' in fields:
            depth_names = _string_field(mat, 'depthname')
        else:
            depth_names = [
                p.replace('\\', '/').rsplit('/', 1)[-1]
                for p in _string_field(mat, 'depthpath')
            ]
    entries = []
    for i, scene in enumerate(scenes):
        if not scene or not depth_names[i]:
            raise common.ConversionError(
                f'{meta_path}: {META_VAR}({i + 1}): cannot locate the frame: '
                f'{source} has no {ROOT_MARKER!r} folder component or the '
                'depth file name is empty')
        entries.append(
            dict(
                scene=scene.rstrip('/'),
                rgb=osp.join(root, *rgb_rel[i].split('/')),
                depth=osp.join(root, *scene.split('/'), depth_dir,
                               depth_names[i])))
    return entries


def read_split(split_path):
    """Scene folders (relative to the root) of ``alltrain`` / ``alltest``."""
    scenes = {}
    with common.MatFile(split_path, 'allsplit.mat (--split)') as mat:
        for split, var in SPLIT_VARIABLES.items():
            rel = set()
            for path in mat.cellstr(var):
                scene = relative_to_root(path)
                if not scene:
                    raise common.ConversionError(
                        f'{split_path}: {var!r} entry {path!r} has no '
                        f'{ROOT_MARKER!r} folder component')
                rel.add(scene)
            scenes[split] = rel
    both = sorted(scenes['train'] & scenes['test'])
    if both:
        raise common.ConversionError(
            f'{split_path}: the split is not disjoint: {len(both)} scene(s) '
            f'are in both alltrain and alltest (first: {both[0]})')
    return scenes


def assign_splits(entries, split_scenes, split_path, unmatched):
    """1-based entry indices per split, ascending."""
    splits = {'train': [], 'test': []}
    skipped = []
    for i, entry in enumerate(entries, 1):
        for split in ('train', 'test'):
            if entry['scene'] in split_scenes[split]:
                splits[split].append(i)
                break
        else:
            if unmatched == 'error':
                raise common.ConversionError(
                    f'entry {i} ({entry["scene"]}) is in neither alltrain '
                    f'nor alltest of {split_path} (see --unmatched)')
            if unmatched == 'test':
                splits['test'].append(i)
            else:
                skipped.append(i)
    if skipped:
        print(f'skipped {len(skipped)} entries in neither split list '
              f'(first: {skipped[0]})')
    return splits


def _init_worker(seg_path, out_dir):
    mat = common.MatFile(seg_path, 'SUNRGBD2Dseg.mat (--seg)')
    _STATE.update(
        mat=mat,
        seg=mat.struct_field(SEG_VAR, SEG_FIELD),
        lut=common.build_label_lut(
            np.arange(1, NUM_CLASSES + 1), NUM_CLASSES, 'SUN RGB-D'),
        seg_path=seg_path,
        out_dir=out_dir)


def _close_worker():
    mat = _STATE.pop('mat', None)
    if mat is not None:
        mat.close()
    _STATE.clear()


def _imread(path, flags, what):
    image = cv2.imread(path, flags)
    if image is None:
        raise common.ConversionError(f'{what}: cannot read image {path}')
    return image


def _convert_entry(task):
    index1, entry = task
    what = f'entry {index1} ({entry["scene"]})'
    bgr = _imread(entry['rgb'],
                  cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION, what)
    raw_depth = _imread(entry['depth'], cv2.IMREAD_UNCHANGED, what)
    if raw_depth.ndim != 2 or raw_depth.dtype != np.uint16:
        raise common.ConversionError(
            f'{what}: {entry["depth"]} is not a 16-bit single-channel PNG '
            f'(shape {raw_depth.shape}, dtype {raw_depth.dtype})')
    raw_label = _STATE['seg'][index1 - 1]
    if not isinstance(raw_label, np.ndarray) or raw_label.ndim != 2:
        raise common.ConversionError(
            f'{_STATE["seg_path"]}: {SEG_VAR}({index1}).{SEG_FIELD} is not '
            'a 2-D label map')
    if not (bgr.shape[:2] == raw_depth.shape == raw_label.shape):
        raise common.ConversionError(
            f'{what}: image sizes disagree: rgb {bgr.shape} '
            f'({entry["rgb"]}), depth {raw_depth.shape} ({entry["depth"]}), '
            f'label {raw_label.shape} ({_STATE["seg_path"]})')
    label = common.apply_label_lut(
        raw_label, _STATE['lut'],
        f'{_STATE["seg_path"]}: {SEG_VAR}({index1}).{SEG_FIELD}',
        f'{NUM_CLASSES} classes')
    common.write_sample(_STATE['out_dir'],
                        common.sample_name(index1), bgr[..., ::-1],
                        common.rotate_right_3(raw_depth), label, what)


def convert(root,
            toolbox,
            out_dir,
            meta_path=None,
            seg_path=None,
            split_path=None,
            depth_dir='depth',
            unmatched='error',
            nproc=1):
    """Convert SUN RGB-D; returns ``{'train': names, 'test': names}``."""
    if not osp.isdir(root):
        raise common.ConversionError(f'SUNRGBD_ROOT not found: {root}')
    root = resolve_root(root)
    toolbox = resolve_toolbox(toolbox)
    meta_path = meta_path or osp.join(toolbox, *DEFAULT_META)
    seg_path = seg_path or osp.join(toolbox, *DEFAULT_SEG)
    split_path = split_path or osp.join(toolbox, *DEFAULT_SPLIT)
    for path, what in ((meta_path, 'SUNRGBDMeta.mat (--meta)'),
                       (seg_path, 'SUNRGBD2Dseg.mat (--seg)'),
                       (split_path, 'allsplit.mat (--split)')):
        common.require_file(path, what)

    entries = read_meta(meta_path, root, depth_dir)
    with common.MatFile(seg_path, 'SUNRGBD2Dseg.mat (--seg)') as mat:
        num_labels = len(mat.struct_field(SEG_VAR, SEG_FIELD))
    if num_labels != len(entries):
        raise common.ConversionError(
            f'{seg_path}: {SEG_VAR}.{SEG_FIELD} has {num_labels} entries but '
            f'{meta_path} has {len(entries)}')
    splits = assign_splits(entries, read_split(split_path), split_path,
                           unmatched)
    if len(entries) == sum(STANDARD_SIZES.values()):
        for split, size in STANDARD_SIZES.items():
            if len(splits[split]) != size:
                print(f'warning: {len(splits[split])} {split} samples, the '
                      f'standard split has {size}')

    tasks = [(i, entries[i - 1]) for i in splits['train'] + splits['test']]
    for index1, entry in tasks:  # fail early, before writing anything
        for key in ('rgb', 'depth'):
            if not osp.isfile(entry[key]):
                raise common.ConversionError(
                    f'entry {index1} ({entry["scene"]}): {key} file not '
                    f'found: {entry[key]}')

    common.prepare_output(out_dir)
    common.run_tasks(
        _convert_entry,
        tasks,
        nproc=nproc,
        initializer=_init_worker,
        initargs=(seg_path, out_dir),
        finalizer=_close_worker,
        desc='SUN RGB-D')
    names = {k: [common.sample_name(i) for i in v] for k, v in splits.items()}
    common.write_split_files(out_dir, names)
    return names


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert SUN RGB-D (official SUNRGBD.zip + '
        'SUNRGBDtoolbox.zip) to the canonical layout rgb/, depth/ (uint16 '
        'mm), label/ (37 classes, 255 = unlabelled), train.txt (5285), '
        'test.txt (5050).')
    parser.add_argument(
        'root',
        metavar='SUNRGBD_ROOT',
        help='the unpacked SUNRGBD folder (holding kv1/, kv2/, realsense/, '
        'xtion/)')
    parser.add_argument(
        'toolbox',
        metavar='TOOLBOX_DIR',
        help='the unpacked SUNRGBDtoolbox folder')
    parser.add_argument(
        '-o', '--out-dir', required=True, help='output directory')
    parser.add_argument(
        '--meta',
        help='SUNRGBDMeta.mat (default: TOOLBOX_DIR/Metadata/'
        'SUNRGBDMeta.mat)')
    parser.add_argument(
        '--seg',
        help='SUNRGBD2Dseg.mat (default: TOOLBOX_DIR/Metadata/'
        'SUNRGBD2Dseg.mat)')
    parser.add_argument(
        '--split',
        help='allsplit.mat (default: TOOLBOX_DIR/traintestSUNRGBD/'
        'allsplit.mat)')
    parser.add_argument(
        '--depth-dir',
        choices=('depth', 'depth_bfx'),
        default='depth',
        help='per-scene depth folder: raw sensor depth (depth, default) or '
        'the hole-filled depth (depth_bfx)')
    parser.add_argument(
        '--unmatched',
        choices=('error', 'test', 'skip'),
        default='error',
        help='what to do with an entry whose scene is in neither alltrain '
        'nor alltest (default: error)')
    parser.add_argument(
        '--nproc',
        type=int,
        default=1,
        help='number of worker processes (default: 1)')
    args = parser.parse_args(argv)
    if args.nproc < 1:
        parser.error('--nproc must be >= 1')
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        splits = convert(
            args.root,
            args.toolbox,
            args.out_dir,
            meta_path=args.meta,
            seg_path=args.seg,
            split_path=args.split,
            depth_dir=args.depth_dir,
            unmatched=args.unmatched,
            nproc=args.nproc)
    except common.ConversionError as exc:
        raise SystemExit(f'sunrgbd.py: error: {exc}')
    common.print_summary('SUN RGB-D', args.out_dir, splits)


if __name__ == '__main__':
    main()
