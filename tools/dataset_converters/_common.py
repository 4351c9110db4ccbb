"""Helpers shared by the RGB-D dataset converters (``nyu.py``,
``sunrgbd.py``).

Canonical layout written by every converter::

    <out_dir>/
      rgb/<name>.png    8-bit, 3-channel colour PNG
      depth/<name>.png  16-bit, 1-channel PNG, depth in millimetres,
                        0 = no measurement
      label/<name>.png  8-bit, 1-channel PNG, classes 0..K-1,
                        255 = unlabelled / ignore
      train.txt, test.txt  one sample name per line (no extension)

Label rule: source label 0 (unlabelled) -> 255, class c in 1..K -> c - 1.
Depth rule: metres -> round(m * 1000) clipped to [0, 65535] (uint16);
NaN, non-finite and values <= 0 -> 0.

MATLAB files come in two container formats and both are read through
:class:`MatFile`:

* v5 / v7 (``scipy.io.loadmat``): arrays keep the MATLAB orientation; cell
  arrays are object arrays and struct arrays are record arrays.
* v7.3 (HDF5, ``h5py``): MATLAB is column-major, so every dataset shows up
  with its axes reversed (a MATLAB ``480x640x3x1449`` array has the h5py
  shape ``(1449, 3, 640, 480)``). Cell arrays and struct arrays are datasets
  of HDF5 object references into the ``#refs#`` group; a struct array is a
  group with one reference dataset per field. Strings are ``uint16``
  datasets with the attribute ``MATLAB_class = 'char'``.

:class:`MatFile` hides the difference: every value it returns is in MATLAB
orientation (h5py data is transposed back), strings are ``str`` and cell
arrays are lists in MATLAB (column-major) order.
"""
import multiprocessing
import os
import os.path as osp

import cv2
import h5py
import numpy as np
import scipy.io
from tqdm import tqdm

IGNORE_INDEX = 255
MM_PER_METRE = 1000
UINT16_MAX = np.iinfo(np.uint16).max
SUBDIRS = ('rgb', 'depth', 'label')
SPLITS = ('train', 'test')

_H5_INTERNAL = ('#refs#', '#subsystem#')


class ConversionError(RuntimeError):
    """An input file is missing or malformed.

    The message always names the offending file, variable or sample.
    """


def require_file(path, what):
    """Raise :class:`ConversionError` unless ``path`` is an existing file."""
    if not osp.isfile(path):
        raise ConversionError(f'{what} not found: {path}')
    return path


def sample_name(index1):
    """Canonical sample name of a 1-based index: ``7 -> '000007'``."""
    return f'{int(index1):06d}'


# ---------------------------------------------------------------------------
# MATLAB files
# ---------------------------------------------------------------------------
def _h5_class(obj):
    cls = obj.attrs.get('MATLAB_class', b'')
    return cls.decode() if isinstance(cls, bytes) else str(cls)


def _is_ref_dataset(obj):
    return (isinstance(obj, h5py.Dataset)
            and h5py.check_dtype(ref=obj.dtype) is not None)


def _h5_value(h5file, obj):
    """Decode one HDF5 node of a v7.3 MAT file into a Python value."""
    if isinstance(obj, h5py.Group):
        return obj  # nested struct, returned as is
    cls = _h5_class(obj)
    if obj.attrs.get('MATLAB_empty', 0):
        # empty arrays store their dimensions as data
        if cls == 'char':
            return ''
        return [] if cls == 'cell' else np.zeros((0, 0))
    if _is_ref_dataset(obj):
        return [_h5_value(h5file, h5file[ref]) for ref in obj[()].ravel()]
    data = np.asarray(obj[()])
    if cls == 'char':
        return ''.join(chr(c) for c in data.T.ravel())
    return data.T


def _v5_value(value):
    """Normalise one value returned by ``scipy.io.loadmat``."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind == 'U':
            return ''.join(value.ravel(order='F').tolist())
        if value.dtype.kind == 'O':
            return [_v5_value(v) for v in value.ravel(order='F')]
        return value
    if isinstance(value, str):
        return value
    return np.asarray(value)


class MatSequence:
    """Lazy, indexable view of the elements of a MATLAB struct field."""

    def __init__(self, length, getter):
        self._length = length
        self._getter = getter

    def __len__(self):
        return self._length

    def __getitem__(self, index):
        if not 0 <= index < self._length:
            raise IndexError(index)
        return self._getter(index)

    def __iter__(self):
        return (self[i] for i in range(self._length))


class MatFrames:
    """Lazy access to ``A(:, ..., :, i)`` of a (large) MATLAB array.

    For v7.3 files only the requested frame is read from disk, so the
    2.8 GB NYU file is never loaded as a whole.
    """

    def __init__(self, matfile, name, ndim):
        self.name = name
        if matfile.is_v73:
            dset = matfile.h5_node(name)
            if not isinstance(dset, h5py.Dataset) or _is_ref_dataset(dset):
                raise ConversionError(
                    f'{matfile.path}: {name!r} is not a numeric array')
            self.dtype = dset.dtype
            shape = tuple(reversed(dset.shape))
            if len(shape) == ndim:
                self._get = lambda i: np.asarray(dset[i]).T
            else:  # MATLAB drops trailing singleton dimensions
                self._get = lambda i: np.asarray(dset[()]).T
        else:
            array = matfile.array(name)
            self.dtype = array.dtype
            shape = array.shape
            if len(shape) < ndim:
                array = array.reshape(shape + (1, ) * (ndim - len(shape)))
            self._get = lambda i: array[..., i]
        if len(shape) < ndim:
            shape = shape + (1, ) * (ndim - len(shape))
        self.shape = shape

    def __len__(self):
        return self.shape[-1]

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._get(index)


class MatFile:
    """Read-only access to a MATLAB v5/v7 or v7.3 (HDF5) ``.mat`` file.

    Args:
        path (str): The file.
        what (str): Human readable description used in error messages.
    """

    def __init__(self, path, what='MAT file'):
        require_file(path, what)
        self.path = path
        self.is_v73 = h5py.is_hdf5(path)
        self._h5 = None
        self._cache = {}
        if self.is_v73:
            try:
                self._h5 = h5py.File(path, 'r')
            except OSError as exc:
                raise ConversionError(
                    f'{path}: cannot open MATLAB v7.3 (HDF5) file: {exc}')
            self._names = [k for k in self._h5.keys() if k not in _H5_INTERNAL]
        else:
            try:
                self._names = [v[0] for v in scipy.io.whosmat(path)]
            except Exception as exc:  # scipy raises many different types
                raise ConversionError(
                    f'{path}: not a readable MATLAB file: {exc}')

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None
        self._cache.clear()

    @property
    def format(self):
        return 'v7.3 (HDF5)' if self.is_v73 else 'v5'

    def keys(self):
        """Names of the variables stored in the file."""
        return list(self._names)

    def require(self, name):
        if name not in self._names:
            held = ', '.join(sorted(self._names)) or 'no variables'
            raise ConversionError(f'{self.path}: variable {name!r} not found '
                                  f'(the file holds: {held})')

    def h5_node(self, name):
        self.require(name)
        return self._h5[name]

    def _v5(self, name):
        self.require(name)
        if name not in self._cache:
            try:
                data = scipy.io.loadmat(
                    self.path,
                    variable_names=[name],
                    squeeze_me=False,
                    struct_as_record=True,
                    chars_as_strings=True)
            except Exception as exc:
                raise ConversionError(
                    f'{self.path}: cannot read variable {name!r}: {exc}')
            self._cache[name] = data[name]
        return self._cache[name]

    def array(self, name):
        """A numeric array in MATLAB orientation (loaded completely)."""
        if self.is_v73:
            node = self.h5_node(name)
            value = None
            if isinstance(node, h5py.Dataset) and not _is_ref_dataset(node):
                value = _h5_value(self._h5, node)
        else:
            value = self._v5(name)
        if (not isinstance(value, np.ndarray)
                or value.dtype.kind not in 'biuf'):
            raise ConversionError(
                f'{self.path}: variable {name!r} is not a numeric array')
        return value

    def frames(self, name, ndim):
        """Lazy per-frame access along the last of ``ndim`` axes."""
        return MatFrames(self, name, ndim)

    def cellstr(self, name):
        """A cell array of strings as a list of ``str``."""
        if self.is_v73:
            node = self.h5_node(name)
            value = _h5_value(self._h5, node) if _is_ref_dataset(node) else 0
        else:
            value = _v5_value(self._v5(name))
        if not isinstance(value, list) or not all(
                isinstance(v, str) for v in value):
            raise ConversionError(f'{self.path}: variable {name!r} is not a '
                                  'cell array of strings')
        return value

    def struct_fields(self, name):
        """Field names of the struct (array) ``name``."""
        if self.is_v73:
            node = self.h5_node(name)
            if not isinstance(node, h5py.Group):
                raise ConversionError(
                    f'{self.path}: variable {name!r} is not a struct array')
            return list(node.keys())
        value = self._v5(name)
        if value.dtype.names is None:
            raise ConversionError(
                f'{self.path}: variable {name!r} is not a struct array')
        return list(value.dtype.names)

    def struct_field(self, name, field):
        """Field ``field`` of every element of the struct array ``name``.

        Returns a :class:`MatSequence` whose items (decoded lazily) are in
        MATLAB linear order; strings are ``str``, arrays are in MATLAB
        orientation.
        """
        fields = self.struct_fields(name)
        if field not in fields:
            raise ConversionError(
                f'{self.path}: struct {name!r} has no field {field!r} '
                f'(fields: {", ".join(fields)})')
        if self.is_v73:
            h5file = self._h5
            node = h5file[name][field]
            if _is_ref_dataset(node):  # struct array: one ref per element
                refs = node[()].ravel()
                return MatSequence(
                    len(refs), lambda i: _h5_value(h5file, h5file[refs[i]]))
            return MatSequence(1, lambda i: _h5_value(h5file, node))
        elements = self._v5(name).ravel(order='F')
        return MatSequence(
            len(elements), lambda i: _v5_value(elements[i][field]))


# ---------------------------------------------------------------------------
# Label and depth encoding
# ---------------------------------------------------------------------------
def _check_integral(values, what):
    values = np.asarray(values)
    if values.dtype.kind == 'f':
        if not np.all(np.isfinite(values)) or np.any(
                values != np.round(values)):
            raise ConversionError(f'{what}: holds non-integer values')
    elif values.dtype.kind not in 'biu':
        raise ConversionError(f'{what}: expected integers, got dtype '
                              f'{values.dtype}')
    return values.astype(np.int64)


def build_label_lut(mapping, num_classes, what):
    """Look-up table from raw source labels to canonical train ids.

    Args:
        mapping (array-like): ``mapping[j]`` is the class (1..K) of raw
            label ``j + 1``. Raw label 0 is always unlabelled.
        num_classes (int): K.
        what (str): Description of the mapping's source for messages.

    Returns:
        np.ndarray: uint8 table of ``len(mapping) + 1`` entries; entry 0 is
        255, entry ``j + 1`` is ``mapping[j] - 1``.
    """
    mapping = _check_integral(np.asarray(mapping).ravel(), what)
    if mapping.size == 0:
        raise ConversionError(f'{what}: the class mapping is empty')
    bad = np.flatnonzero((mapping < 1) | (mapping > num_classes))
    if bad.size:
        j = int(bad[0])
        raise ConversionError(
            f'{what}: raw label {j + 1} is mapped to {mapping[j]}, outside '
            f'the classes 1..{num_classes}')
    lut = np.empty(mapping.size + 1, dtype=np.uint8)
    lut[0] = IGNORE_INDEX
    lut[1:] = mapping - 1
    return lut


def apply_label_lut(raw, lut, what, mapping_desc):
    """Map a raw label image through ``lut`` (see :func:`build_label_lut`).

    Raises :class:`ConversionError` naming ``what`` when a value has no
    entry in the table (negative or larger than ``len(lut) - 1``).
    """
    raw = _check_integral(raw, what)
    if raw.size:
        low, high = int(raw.min()), int(raw.max())
        if low < 0 or high >= len(lut):
            value = low if low < 0 else high
            raise ConversionError(
                f'{what}: label value {value} is outside 0..{len(lut) - 1} '
                f'({mapping_desc})')
    return lut[raw]


def metres_to_mm(depth_m):
    """Depth in metres (float) -> uint16 millimetres, 0 = invalid."""
    depth_m = np.asarray(depth_m, dtype=np.float64)
    depth_mm = np.zeros(depth_m.shape, dtype=np.uint16)
    valid = np.isfinite(depth_m) & (depth_m > 0)
    depth_mm[valid] = np.clip(
        np.round(depth_m[valid] * MM_PER_METRE), 0, UINT16_MAX)
    return depth_mm


def rotate_right_3(raw):
    """Undo the bit layout of SUN RGB-D depth PNGs.

    Same as the toolbox's ``bitor(bitshift(d, -3), bitshift(d, 16 - 3))``
    on uint16 data: a 16-bit rotation to the right by 3 bits. The result is
    the depth in millimetres (the toolbox divides it by 1000 to get metres).
    """
    raw = np.asarray(raw, dtype=np.uint32)
    return ((raw >> 3) | ((raw << 13) & 0xFFFF)).astype(np.uint16)


# ---------------------------------------------------------------------------
# Canonical layout
# ---------------------------------------------------------------------------
def prepare_output(out_dir):
    for sub in SUBDIRS:
        os.makedirs(osp.join(out_dir, sub), exist_ok=True)


def _imwrite(path, image):
    if not cv2.imwrite(path, image):
        raise ConversionError(f'cannot write {path}')


def write_sample(out_dir, name, rgb, depth_mm, label, what):
    """Write one sample of the canonical layout.

    Args:
        out_dir (str): Output root (see :func:`prepare_output`).
        name (str): Sample name without extension.
        rgb (np.ndarray): HxWx3 uint8 image in **RGB** order.
        depth_mm (np.ndarray): HxW uint16 depth in millimetres.
        label (np.ndarray): HxW uint8 train ids (255 = ignore).
        what (str): Description of the sample for error messages.
    """
    rgb, depth_mm, label = map(np.asarray, (rgb, depth_mm, label))
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ConversionError(f'{what}: expected an HxWx3 uint8 colour '
                              f'image, got {rgb.shape} {rgb.dtype}')
    if not (rgb.shape[:2] == depth_mm.shape == label.shape):
        raise ConversionError(
            f'{what}: image sizes disagree: rgb {rgb.shape}, '
            f'depth {depth_mm.shape}, label {label.shape}')
    if depth_mm.dtype != np.uint16 or label.dtype != np.uint8:
        raise ConversionError(f'{what}: depth must be uint16 and label uint8'
                              f', got {depth_mm.dtype} and {label.dtype}')
    _imwrite(
        osp.join(out_dir, 'rgb', name + '.png'),
        np.ascontiguousarray(rgb[..., ::-1]))  # cv2 writes BGR
    _imwrite(osp.join(out_dir, 'depth', name + '.png'), depth_mm)
    _imwrite(osp.join(out_dir, 'label', name + '.png'), label)


def write_split_files(out_dir, splits):
    """Write ``<split>.txt`` (one name per line) for each ``splits`` item."""
    for split, names in splits.items():
        with open(osp.join(out_dir, f'{split}.txt'), 'w') as f:
            f.writelines(f'{name}\n' for name in names)


def print_summary(dataset, out_dir, splits):
    counts = ', '.join(f'#{k}: {len(v)}' for k, v in splits.items())
    total = sum(len(v) for v in splits.values())
    print(f'{dataset}: converted {total} samples ({counts}) -> {out_dir}')


# ---------------------------------------------------------------------------
# Task runner
# ---------------------------------------------------------------------------
def run_tasks(worker,
              tasks,
              nproc=1,
              initializer=None,
              initargs=(),
              finalizer=None,
              desc=None):
    """Run ``worker(task)`` for every task with a tqdm progress bar.

    With ``nproc > 1`` the tasks run in a ``multiprocessing.Pool`` whose
    processes each call ``initializer(*initargs)`` once (e.g. to open their
    own HDF5 handle, which must not be shared across processes). Exceptions
    raised by ``worker`` propagate to the caller.
    """
    tasks = list(tasks)
    if nproc < 1:
        raise ValueError(f'nproc must be >= 1, got {nproc}')
    if nproc == 1 or len(tasks) <= 1:
        if initializer is not None:
            initializer(*initargs)
        try:
            for task in tqdm(tasks, desc=desc, unit='img'):
                worker(task)
        finally:
            if finalizer is not None:
                finalizer()
        return
    chunksize = max(1, min(16, len(tasks) // (4 * nproc)))
    with multiprocessing.Pool(nproc, initializer, initargs) as pool:
        results = pool.imap_unordered(worker, tasks, chunksize=chunksize)
        for _ in tqdm(results, total=len(tasks), desc=desc, unit='img'):
            pass
