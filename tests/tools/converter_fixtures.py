"""Miniature NYU Depth v2 and SUN RGB-D inputs in their real file formats.

Used by ``test_dataset_converters.py``. MATLAB v7.3 files are written with
h5py the way MATLAB writes them: a 512-byte user block with the MAT header,
every array with its axes reversed (column-major data seen from C),
``MATLAB_class`` attributes, cell and struct arrays as datasets of object
references into ``#refs#``. MATLAB v5 files are written with
``scipy.io.savemat``.
"""
import os
import os.path as osp

import cv2
import h5py
import numpy as np
import scipy.io

_MATLAB_CLASSES = {
    np.dtype(np.uint8): 'uint8',
    np.dtype(np.uint16): 'uint16',
    np.dtype(np.int32): 'int32',
    np.dtype(np.float32): 'single',
    np.dtype(np.float64): 'double',
    np.dtype(np.bool_): 'logical',
}


class Struct:
    """A MATLAB 1xN struct array: a list of dicts with equal keys."""

    def __init__(self, elements):
        self.elements = list(elements)
        self.fields = list(self.elements[0].keys())


class Mat73Writer:
    """Write a MATLAB v7.3 MAT file (HDF5) the way MATLAB lays it out."""

    def __init__(self, path):
        self.path = path
        self.file = h5py.File(path, 'w', userblock_size=512)
        self.refs = self.file.create_group('#refs#')
        self._count = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        self.file.close()
        text = (b'MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: '
                b'Mon Jan  1 00:00:00 2018 HDF5 schema 1.00 .')
        header = text.ljust(116, b' ') + b'\0' * 8 + b'\x00\x02IM'
        with open(self.path, 'r+b') as f:
            f.write(header.ljust(512, b'\0'))

    def put(self, name, value):
        self._write(self.file, name, value)

    def _ref(self, value):
        name = f'r{self._count}'
        self._count += 1
        return self._write(self.refs, name, value).ref

    def _write(self, parent, name, value):
        if isinstance(value, Struct):
            group = parent.create_group(name)
            group.attrs['MATLAB_class'] = np.bytes_('struct')
            names = np.empty(len(value.fields), dtype=object)
            for i, field in enumerate(value.fields):
                names[i] = np.array(list(field), dtype='S1')
            group.attrs.create(
                'MATLAB_fields', names, dtype=h5py.vlen_dtype(np.dtype('S1')))
            for field in value.fields:
                refs = [self._ref(e[field]) for e in value.elements]
                group.create_dataset(
                    field,
                    data=np.array(refs, dtype=h5py.ref_dtype).reshape(-1, 1))
            return group
        if isinstance(value, list):  # 1xN cell
            refs = [self._ref(v) for v in value]
            dset = parent.create_dataset(
                name, data=np.array(refs, dtype=h5py.ref_dtype).reshape(-1, 1))
            dset.attrs['MATLAB_class'] = np.bytes_('cell')
            return dset
        if isinstance(value, str):
            if not value:
                dset = parent.create_dataset(
                    name, data=np.array([1, 0], dtype=np.uint64))
                dset.attrs['MATLAB_empty'] = np.uint8(1)
            else:
                codes = np.array([ord(c) for c in value], dtype=np.uint16)
                dset = parent.create_dataset(name, data=codes.reshape(-1, 1))
                dset.attrs['MATLAB_int_decode'] = np.int32(2)
            dset.attrs['MATLAB_class'] = np.bytes_('char')
            return dset
        value = np.asarray(value)
        if value.ndim < 2:
            value = value.reshape(1, -1)
        dset = parent.create_dataset(name, data=value.T)
        dset.attrs['MATLAB_class'] = np.bytes_(_MATLAB_CLASSES[value.dtype])
        return dset


def write_mat73(path, variables):
    with Mat73Writer(path) as writer:
        for name, value in variables.items():
            writer.put(name, value)
    return path


def cell(strings):
    """A 1xN MATLAB cell array of strings for ``scipy.io.savemat``."""
    array = np.empty((1, len(strings)), dtype=object)
    for i, s in enumerate(strings):
        array[0, i] = s
    return array


def struct_array(elements):
    """A 1xN MATLAB struct array for ``scipy.io.savemat``."""
    fields = list(elements[0].keys())
    array = np.empty((1, len(elements)), dtype=[(f, object) for f in fields])
    for i, element in enumerate(elements):
        for field in fields:
            array[0, i][field] = element[field]
    return array


# ---------------------------------------------------------------------------
# NYU Depth v2
# ---------------------------------------------------------------------------
NYU_H, NYU_W, NYU_N = 6, 8, 5
NYU_TRAIN = [1, 3, 4]
NYU_TEST = [2, 5]


def make_nyu(root, seed=0):
    """Write ``nyu_depth_v2_labeled.mat``, ``splits.mat`` and
    ``classMapping40.mat`` to ``root``.

    Returns a dict with the paths and the MATLAB-orientation source arrays
    (``images`` HxWx3xN, ``depths`` HxWxN, ``labels`` HxWxN, ``map_class``).
    """
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (NYU_H, NYU_W, 3, NYU_N), dtype=np.uint8)
    depths = rng.uniform(0.5, 9.9, (NYU_H, NYU_W, NYU_N))
    depths[0, :6, 0] = [1.0, np.nan, -1.0, 70.0, 0.0014, np.inf]
    depths[1, 0, 0] = 2.5004
    labels = rng.integers(0, 895, (NYU_H, NYU_W, NYU_N), dtype=np.uint16)
    labels[0, 0, :] = 0
    labels[0, 1, :] = 894
    labels[0, 2, :] = 1
    map_class = rng.integers(1, 41, 894).astype(np.float64)
    map_class[0] = 7  # raw 1 -> 7 -> train id 6
    map_class[893] = 40  # raw 894 -> 40 -> train id 39

    paths = dict(
        mat=osp.join(root, 'nyu_depth_v2_labeled.mat'),
        splits=osp.join(root, 'splits.mat'),
        mapping=osp.join(root, 'classMapping40.mat'))
    write_mat73(
        paths['mat'], {
            'images': images,
            'depths': depths,
            'labels': labels,
            'names': ['wall', 'floor'],
        })
    write_nyu_splits(paths['splits'], NYU_TRAIN, NYU_TEST)
    scipy.io.savemat(
        paths['mapping'], {
            'mapClass': map_class.reshape(1, -1),
            'className': cell([f'class{i}' for i in range(1, 41)]),
        })
    return dict(
        paths=paths,
        images=images,
        depths=depths,
        labels=labels,
        map_class=map_class)


def write_nyu_splits(path, train, test, v73=False):
    variables = {
        'trainNdxs': np.array(train, dtype=np.float64).reshape(-1, 1),
        'testNdxs': np.array(test, dtype=np.float64).reshape(-1, 1),
    }
    if v73:
        write_mat73(path, variables)
    else:
        scipy.io.savemat(path, variables)


# ---------------------------------------------------------------------------
# SUN RGB-D
# ---------------------------------------------------------------------------
AUTHORS_PREFIX = '/n/fs/sun3d/data/'

# (scene folder below SUNRGBD/, rgb name, depth name, (H, W), split)
SUN_SCENES = [
    ('kv1/NYUdata/NYU0001', 'NYU0001.jpg', 'NYU0001.png', (6, 8), 'train'),
    ('kv2/kinect2data/000002_2014-05-26_14-23-37_260595134347_rgbf000103'
     '-resize', '0000103.jpg', '0000103.png', (5, 9), 'test'),
    ('realsense/lg/2014_10_24-14_15_34-1311000073', '0000031.jpg',
     '0000031.png', (7, 4), 'train'),
    ('xtion/xtion_align_data/2014_12_03-11_21_55-1311000065/scene_0005',
     '0000123.jpg', '0000123.png', (6, 10), 'test'),
]


def rotate_left_3(depth_mm):
    """Inverse of the toolbox's right rotation: how the PNGs store depth."""
    depth_mm = depth_mm.astype(np.uint32)
    return (((depth_mm << 3) & 0xFFFF) | (depth_mm >> 13)).astype(np.uint16)


def make_sunrgbd(root,
                 seed=0,
                 meta_v73=False,
                 seg_sizes=None,
                 seg_values=None):
    """Write a tiny ``SUNRGBD/`` tree and ``SUNRGBDtoolbox/`` to ``root``.

    Returns a dict with the paths and, per entry, the decoded source RGB
    (BGR, as OpenCV reads the JPEG), the expected depth in mm for the
    ``depth`` and ``depth_bfx`` folders and the 37-class label map.
    """
    rng = np.random.default_rng(seed)
    data_root = osp.join(root, 'SUNRGBD')
    toolbox = osp.join(root, 'SUNRGBDtoolbox')
    os.makedirs(osp.join(toolbox, 'Metadata'))
    os.makedirs(osp.join(toolbox, 'traintestSUNRGBD'))

    meta, seglabel, seglabelall, entries = [], [], [], []
    for i, (scene, rgb_name, depth_name, (h, w),
            split) in enumerate(SUN_SCENES):
        scene_dir = osp.join(data_root, *scene.split('/'))
        for sub in ('image', 'depth', 'depth_bfx', 'annotation2Dfinal'):
            os.makedirs(osp.join(scene_dir, sub))
        bgr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        rgb_path = osp.join(scene_dir, 'image', rgb_name)
        assert cv2.imwrite(rgb_path, bgr)
        decoded = cv2.imread(rgb_path, cv2.IMREAD_COLOR)

        depth_mm = rng.integers(400, 8000, (h, w)).astype(np.uint16)
        depth_mm[0, 0] = 0
        depth_mm[0, 1] = 1234
        depth_bfx_mm = depth_mm.copy()
        depth_bfx_mm[0, 0] = 777  # filled hole
        raw = rotate_left_3(depth_mm)
        raw[1, 0] = 0x0007  # low bits set: rotates to 0xE000
        depth_mm[1, 0] = 0xE000
        assert cv2.imwrite(osp.join(scene_dir, 'depth', depth_name), raw)
        assert cv2.imwrite(
            osp.join(scene_dir, 'depth_bfx', depth_name),
            rotate_left_3(depth_bfx_mm))

        label = rng.integers(0, 38, (h, w)).astype(np.float64)
        label[0, 0], label[0, 1], label[0, 2] = 0, 37, 1
        if seg_sizes is not None and seg_sizes[i] is not None:
            label = np.ones(seg_sizes[i])
        if seg_values is not None and seg_values[i] is not None:
            label[-1, -1] = seg_values[i]
        seglabel.append(label)
        seglabelall.append(
            rng.integers(0, 800, label.shape).astype(np.float64))

        scene_abs = AUTHORS_PREFIX + 'SUNRGBD/' + scene
        meta.append({
            'sequenceName':
            'SUNRGBD/' + scene,
            'groundtruth3DBB':
            np.zeros((0, 0)),
            'Rtilt':
            np.eye(3),
            'K':
            np.array([[520.0, 0, w / 2], [0, 520.0, h / 2], [0, 0, 1]]),
            'depthpath':
            f'{scene_abs}/depth/{depth_name}',
            'rgbpath':
            f'{scene_abs}/image/{rgb_name}',
            'anno_extrinsics':
            np.eye(3),
            'depthname':
            depth_name,
            'rgbname':
            rgb_name,
            'sensorType':
            scene.split('/')[0],
            'valid':
            np.float64(1),
        })
        entries.append(
            dict(
                scene=scene,
                split=split,
                bgr=decoded,
                depth_mm=depth_mm,
                depth_bfx_mm=depth_bfx_mm,
                label=label))

    paths = dict(
        root=data_root,
        toolbox=toolbox,
        meta=osp.join(toolbox, 'Metadata', 'SUNRGBDMeta.mat'),
        seg=osp.join(toolbox, 'Metadata', 'SUNRGBD2Dseg.mat'),
        split=osp.join(toolbox, 'traintestSUNRGBD', 'allsplit.mat'))
    if meta_v73:
        # the real file is v5; this variant has no rgbpath / depthpath, so
        # the converter must fall back to sequenceName + rgbname
        elements = [{
            k: v
            for k, v in m.items() if k not in ('rgbpath', 'depthpath')
        } for m in meta]
        write_mat73(paths['meta'], {'SUNRGBDMeta': Struct(elements)})
    else:
        scipy.io.savemat(paths['meta'], {'SUNRGBDMeta': struct_array(meta)})
    write_mat73(
        paths['seg'], {
            'SUNRGBD2Dseg':
            Struct([{
                'seglabel': s,
                'seglabelall': a
            } for s, a in zip(seglabel, seglabelall)]),
            'seg37list': [f'class{i}' for i in range(1, 38)],
            'seglistall': [f'raw{i}' for i in range(1, 800)],
        })
    # scene paths in a different order than SUNRGBDMeta, plus scenes that
    # are not in this miniature release, one with a trailing slash
    train = [
        AUTHORS_PREFIX + 'SUNRGBD/' + e['scene'] for e in entries
        if e['split'] == 'train'
    ][::-1]
    test = [
        AUTHORS_PREFIX + 'SUNRGBD/' + e['scene'] for e in entries
        if e['split'] == 'test'
    ]
    test[-1] += '/'
    train.append(AUTHORS_PREFIX + 'SUNRGBD/kv1/b3dodata/img_0063')
    test.append(AUTHORS_PREFIX + 'SUNRGBD/kv2/align_kv2/2014-12-05_11-32')
    write_sun_split(paths['split'], train, test)
    return dict(paths=paths, entries=entries)


def write_sun_split(path, train, test):
    scipy.io.savemat(
        path, {
            'alltrain':
            cell(train),
            'alltest':
            cell(test),
            'trainvalsplit':
            struct_array([{
                'train': cell(train[:1]),
                'val': cell(train[1:])
            }]),
        })
