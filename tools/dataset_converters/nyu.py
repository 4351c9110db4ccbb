"""Convert the labelled NYU Depth v2 set to the canonical RGB-D layout.

Inputs (the official files, unmodified):

``nyu_depth_v2_labeled.mat``
    MATLAB v7.3 (HDF5) file of the 1449 densely labelled frames. The
    datasets used are (MATLAB shape -> shape seen through h5py, which
    reverses the axes of column-major MATLAB data):

    * ``images``: uint8 RGB, ``480x640x3x1449`` -> ``(1449, 3, 640, 480)``
    * ``depths``: float depth in metres (in-painted), ``480x640x1449`` ->
      ``(1449, 640, 480)``
    * ``labels``: uint16 raw labels 0..894 (0 = unlabelled),
      ``480x640x1449`` -> ``(1449, 640, 480)``

    Frames are read one at a time (the file is ~2.8 GB) and transposed back
    to ``480x640(x3)``.
``splits.mat``
    The standard split: ``trainNdxs`` (795x1) and ``testNdxs`` (654x1),
    1-based frame indices. MATLAB v5 or v7.3.
``classMapping40.mat``
    The 40-class mapping of Gupta et al.: ``mapClass`` (1x894 or 894x1)
    maps raw label 1..894 to 1..40. Other variables (``className``) are
    ignored. MATLAB v5 or v7.3.

Output (see ``_common.py``): ``rgb/``, ``depth/`` (uint16 mm), ``label/``
(40 classes 0..39, 255 = unlabelled) with names ``000001`` .. ``001449``
(1-based frame index) and ``train.txt`` / ``test.txt`` listing the frames in
the order of ``trainNdxs`` / ``testNdxs``. Only frames named by the split
are converted.

Example::

    python tools/dataset_converters/nyu.py \\
        data/nyu_raw/nyu_depth_v2_labeled.mat data/nyu_raw/splits.mat \\
        data/nyu_raw/classMapping40.mat -o data/nyu --nproc 8
"""
import argparse
import os.path as osp
import sys

import numpy as np

if __package__:
    from . import _common as common
else:  # run as a script
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    import _common as common

NUM_CLASSES = 40
SPLIT_VARIABLES = {'train': 'trainNdxs', 'test': 'testNdxs'}

_STATE = {}


def read_labeled_mat(path):
    """Open the labelled-set file and check its datasets.

    Returns:
        tuple[MatFile, dict]: The open file and lazy frame readers for
        ``images``, ``depths`` and ``labels``.
    """
    mat = common.MatFile(path, 'NYU labelled MAT file')
    try:
        frames = {
            'images': mat.frames('images', 4),
            'depths': mat.frames('depths', 3),
            'labels': mat.frames('labels', 3),
        }
        images = frames['images']
        height, width, channels, num = images.shape
        if channels != 3:
            raise common.ConversionError(
                f'{path}: dataset \'images\' has MATLAB shape {images.shape},'
                ' expected HxWx3xN')
        if images.dtype != np.uint8:
            raise common.ConversionError(
                f'{path}: dataset \'images\' has dtype {images.dtype}, '
                'expected uint8')
        for key in ('depths', 'labels'):
            if frames[key].shape != (height, width, num):
                raise common.ConversionError(
                    f'{path}: dataset {key!r} has MATLAB shape '
                    f'{frames[key].shape}, expected {(height, width, num)} '
                    f'to match \'images\' {images.shape}')
    except Exception:
        mat.close()
        raise
    return mat, frames


def read_splits(path, num_frames):
    """Read ``trainNdxs`` / ``testNdxs`` as lists of 1-based indices."""
    splits = {}
    with common.MatFile(path, 'split file') as mat:
        for split, var in SPLIT_VARIABLES.items():
            values = mat.array(var).ravel(order='F')
            if values.dtype.kind == 'f' and not np.all(
                    values == np.round(values)):
                raise common.ConversionError(
                    f'{path}: {var!r} holds non-integer indices')
            values = values.astype(np.int64)
            bad = values[(values < 1) | (values > num_frames)]
            if bad.size:
                raise common.ConversionError(
                    f'{path}: {var!r} index {bad[0]} is out of range '
                    f'1..{num_frames}')
            uniq, counts = np.unique(values, return_counts=True)
            if np.any(counts > 1):
                raise common.ConversionError(
                    f'{path}: {var!r} lists frame {uniq[counts > 1][0]} '
                    'more than once')
            splits[split] = values.tolist()
    both = sorted(set(splits['train']) & set(splits['test']))
    if both:
        raise common.ConversionError(
            f'{path}: the split is not disjoint: {len(both)} frame(s) are in '
            f'both trainNdxs and testNdxs (first: {both[0]})')
    return splits


def read_class_mapping(path):
    """Look-up table raw label (0..894) -> train id (0..39, 255)."""
    with common.MatFile(path, 'class mapping file') as mat:
        mapping = mat.array('mapClass')
    lut = common.build_label_lut(mapping, NUM_CLASSES, f'{path}: mapClass')
    return lut


def _init_worker(mat_path, lut, mapping_path, out_dir):
    mat, frames = read_labeled_mat(mat_path)
    _STATE.update(
        mat=mat,
        frames=frames,
        lut=lut,
        mat_path=mat_path,
        mapping_desc=f'mapClass in {mapping_path} has {len(lut) - 1} entries',
        out_dir=out_dir)


def _close_worker():
    mat = _STATE.pop('mat', None)
    if mat is not None:
        mat.close()
    _STATE.clear()


def _convert_frame(index1):
    frames = _STATE['frames']
    where = f'{_STATE["mat_path"]}: frame {index1}'
    image = frames['images'][index1 - 1]
    depth = common.metres_to_mm(frames['depths'][index1 - 1])
    label = common.apply_label_lut(frames['labels'][index1 - 1], _STATE['lut'],
                                   where, _STATE['mapping_desc'])
    common.write_sample(_STATE['out_dir'], common.sample_name(index1), image,
                        depth, label, where)


def convert(mat_path, splits_path, mapping_path, out_dir, nproc=1):
    """Convert NYU Depth v2; returns ``{'train': names, 'test': names}``."""
    common.require_file(mat_path, 'NYU labelled MAT file')
    common.require_file(splits_path, 'split file')
    common.require_file(mapping_path, 'class mapping file')
    mat, frames = read_labeled_mat(mat_path)
    num_frames = len(frames['images'])
    mat.close()  # every (worker) process opens its own handle
    splits = read_splits(splits_path, num_frames)
    lut = read_class_mapping(mapping_path)

    common.prepare_output(out_dir)
    indices = splits['train'] + splits['test']
    common.run_tasks(
        _convert_frame,
        indices,
        nproc=nproc,
        initializer=_init_worker,
        initargs=(mat_path, lut, mapping_path, out_dir),
        finalizer=_close_worker,
        desc='NYU Depth v2')
    names = {k: [common.sample_name(i) for i in v] for k, v in splits.items()}
    common.write_split_files(out_dir, names)
    return names


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert the labelled NYU Depth v2 set (official .mat '
        'files) to the canonical layout rgb/, depth/ (uint16 mm), label/ '
        '(40 classes, 255 = unlabelled), train.txt, test.txt.')
    parser.add_argument(
        'mat_path',
        metavar='MAT_PATH',
        help='nyu_depth_v2_labeled.mat (MATLAB v7.3 / HDF5)')
    parser.add_argument(
        'splits_path',
        metavar='SPLITS_MAT',
        help='splits.mat with trainNdxs / testNdxs (1-based)')
    parser.add_argument(
        'mapping_path',
        metavar='CLASS_MAPPING_MAT',
        help='classMapping40.mat with mapClass (894 -> 40 classes)')
    parser.add_argument(
        '-o', '--out-dir', required=True, help='output directory')
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
        splits = convert(args.mat_path, args.splits_path, args.mapping_path,
                         args.out_dir, args.nproc)
    except common.ConversionError as exc:
        raise SystemExit(f'nyu.py: error: {exc}')
    common.print_summary('NYU Depth v2', args.out_dir, splits)


if __name__ == '__main__':
    main()
