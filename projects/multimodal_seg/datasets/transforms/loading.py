"""Loading of the extra modalities of a multimodal segmentation sample.

RGB is loaded by mmcv's ``LoadImageFromFile`` into ``results['img']``. Each
other modality ``m`` listed in ``results['modalities']`` is loaded from
``results['modality_paths'][m]`` into ``results[m]`` (H, W) or (H, W, C),
and ``m`` is appended to ``results['seg_fields']``: mmseg's ``Resize``
(nearest), ``RandomResize``, ``RandomCrop`` (incl. ``cat_max_ratio``) and
``RandomFlip`` then apply the same geometry to it as to the image and the
label. Photometric transforms touch ``img`` only. Load the modalities right
after the image, before any geometric transform. A loader whose modality the
dataset does not list does nothing, so one pipeline serves the RGB-only,
depth-only and RGB-D variants of a config.
"""
import io
import os.path as osp
from typing import Optional, Sequence

import cv2
import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS

RESERVED_KEYS = ('img', 'gt_seg_map', 'gt_sem_seg', 'inputs', 'data_samples')


def sample_name(results: dict) -> str:
    """A short name of the sample for error messages."""
    return str(results.get('img_path', results.get('sample_idx', '?')))


def read_depth(path: str,
               unit_scale: float = 1.0,
               dtypes: Sequence[str] = ('uint16', 'float32', 'float64'),
               backend_args: Optional[dict] = None) -> np.ndarray:
    """Read a depth map as float32 (H, W).

    * ``.png`` (or any image file) is decoded unchanged: a 16-bit
      single-channel PNG as written by the converters (millimetres), or,
      if ``'uint8'`` is allowed, an 8-bit grey image (a 3/4-channel grey
      image is reduced to its first channel).
    * ``.npy`` holds a float (or integer) (H, W) array.

    The raw value times ``unit_scale`` is returned. Invalid depth (0, NaN,
    +-inf, negative) is returned as 0, the value sensors use for "no
    measurement"; with the default normalisation it then equals the padding
    value.

    Raises:
        OSError: the file cannot be read or decoded (truncated PNG, ...).
        TypeError: the stored dtype is not in ``dtypes``.
        ValueError: the array is not a single-channel map.
    """
    try:
        raw_bytes = fileio.get(path, backend_args=backend_args)
    except FileNotFoundError:
        raise FileNotFoundError(f'Depth file {path} does not exist')
    if osp.splitext(path)[1].lower() == '.npy':
        try:
            depth = np.load(io.BytesIO(raw_bytes), allow_pickle=False)
        except Exception as e:
            raise OSError(f'Cannot read depth array {path}: {e}') from e
    else:
        depth = cv2.imdecode(
            np.frombuffer(raw_bytes, np.uint8), cv2.IMREAD_UNCHANGED)
        if depth is None:
            raise OSError(f'Cannot decode depth image {path} (unreadable or '
                          'truncated file)')
        if depth.ndim == 3 and depth.dtype == np.uint8:
            channels = depth[..., :3]
            if not (channels == channels[..., :1]).all():
                raise ValueError(
                    f'Depth image {path} is a colour image, expected a '
                    'single-channel depth map (colourised depth is not '
                    'supported)')
            depth = depth[..., 0]
    return depth_from_array(depth, f'Depth file {path}', unit_scale, dtypes)


def depth_from_array(
    depth: np.ndarray,
    source: str,
    unit_scale: float = 1.0,
    dtypes: Sequence[str] = ('uint16', 'float32', 'float64')
) -> np.ndarray:
    """A stored depth map as :func:`read_depth` returns it: checked dtype
    and shape, float32 (H, W), raw value x ``unit_scale``, invalid values
    as 0. ``source`` names the data in errors."""
    if not isinstance(depth, np.ndarray):
        raise TypeError(f'{source} is a {type(depth).__name__}, expected a '
                        'numpy array')
    if depth.dtype.name not in dtypes:
        raise TypeError(
            f'{source} stores {depth.dtype.name}, expected one of '
            f'{tuple(dtypes)} (16-bit PNG in millimetres by default; pass '
            "dtypes=('uint8',) for 8-bit releases such as DFormer's)")
    if depth.ndim != 2:
        raise ValueError(f'{source} has shape {depth.shape}, '
                         'expected a single-channel (H, W) map')
    depth = depth.astype(np.float32) * np.float32(unit_scale)
    depth[~np.isfinite(depth) | (depth < 0)] = 0
    return depth


def bgr_index(channel: int, num_channels: int, path: str) -> int:
    """Index in a decoded BGR(A) array (mmcv's order) of the
    ``channel``-th channel in RGB(A) order; grey(+alpha) arrays keep their
    order."""
    if not 0 <= channel < num_channels:
        raise ValueError(f'{path} has {num_channels} channels, channel '
                         f'{channel} (RGB order) was asked for')
    return 2 - channel if channel < 3 <= num_channels else channel


class BaseLoadModality(BaseTransform):
    """Shared part of the modality loaders: find the path, check the shape
    against the image, store and register the array."""

    # Resize a map of another size to the RGB size (nearest) instead of
    # failing; set by loaders that offer it.
    resize_to_img = False

    def __init__(self,
                 modality: str,
                 backend_args: Optional[dict] = None) -> None:
        if modality in RESERVED_KEYS or modality == 'rgb':
            raise ValueError(f'{modality!r} cannot name an extra modality')
        self.modality = modality
        self.backend_args = backend_args

    def read(self, path: str) -> np.ndarray:
        raise NotImplementedError

    def from_array(self, array: np.ndarray, source: str) -> np.ndarray:
        """An in-memory map as :meth:`read` returns a stored one."""
        raise NotImplementedError

    def transform(self, results: dict) -> dict:
        name = sample_name(results)
        if self.modality not in results.get('modalities', ()):
            # The dataset does not use this modality (e.g. an RGB-only
            # config sharing the RGB-D pipeline). A modality the dataset
            # lists but no loader loads is caught by the packing transform.
            return results
        arrays = results.get('modality_arrays') or {}
        if self.modality in arrays:  # given in memory (the inferencer)
            path = f'(the {self.modality} array)'
            array = self.from_array(arrays[self.modality],
                                    f'Sample {name}: {self.modality} array')
        else:
            path = results['modality_paths'][self.modality]
            if not osp.isfile(path) and self.backend_args is None:
                raise FileNotFoundError(f'Sample {name}: {self.modality} '
                                        f'file {path} does not exist')
            array = self.read(path)
        expected = results.get('ori_shape')
        if 'img' in results and tuple(results['img_shape']) != tuple(
                results['ori_shape']):
            raise RuntimeError(
                f'{type(self).__name__} must run before geometric '
                'transforms (the image was already resized or cropped)')
        if expected is not None and self.resize_to_img and tuple(
                array.shape[:2]) != tuple(expected[:2]):
            array = mmcv.imresize(
                array, (int(expected[1]), int(expected[0])),
                interpolation='nearest')
        if expected is not None and tuple(array.shape[:2]) != tuple(
                expected[:2]):
            raise ValueError(
                f'Sample {name}: {self.modality} {path} is '
                f'{array.shape[1]}x{array.shape[0]} (WxH) but the '
                f'{results.get("reference_modality", "RGB")} image is '
                f'{expected[1]}x{expected[0]}; the modalities of a sample '
                'must be pixel-aligned')
        results[self.modality] = array
        if self.modality not in results.setdefault('seg_fields', []):
            results['seg_fields'].append(self.modality)
        return results


@TRANSFORMS.register_module()
class LoadDepthFromFile(BaseLoadModality):
    """Load a depth map (16-bit PNG or float ``.npy``) as float32 (H, W).

    Required keys: ``modality_paths`` (or, for maps given in memory,
    ``modality_arrays``), ``modalities``; optional ``img``.
    Added keys: ``<modality>``; appended to ``seg_fields``.

    Args:
        modality (str): Name of the modality. Defaults to ``'depth'``.
        unit_scale (float): Multiplier applied to the stored value. With the
            default 1.0 the values stay in the file's unit (millimetres for
            the converters' PNGs), which the data preprocessor's default
            depth normalisation (std 5000) expects, as TokenFusion does.
        dtypes (Sequence[str]): Accepted stored dtypes.
        backend_args (dict, optional): mmengine file backend arguments.
    """

    def __init__(self,
                 modality: str = 'depth',
                 unit_scale: float = 1.0,
                 dtypes: Sequence[str] = ('uint16', 'float32', 'float64'),
                 backend_args: Optional[dict] = None) -> None:
        super().__init__(modality, backend_args)
        self.unit_scale = unit_scale
        self.dtypes = tuple(dtypes)

    def read(self, path: str) -> np.ndarray:
        return read_depth(path, self.unit_scale, self.dtypes,
                          self.backend_args)

    def from_array(self, array: np.ndarray, source: str) -> np.ndarray:
        return depth_from_array(array, source, self.unit_scale, self.dtypes)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(modality={self.modality!r}, '
                f'unit_scale={self.unit_scale}, dtypes={self.dtypes})')


@TRANSFORMS.register_module()
class LoadModalityImageFromFile(BaseLoadModality):
    """Load an 8-bit image-like modality (HHA, event or LiDAR maps, ...) as
    float32 (H, W, C) in the file's channel order as mmcv decodes it.

    With the default ``color_type='color'`` a grey image is tiled to 3
    channels and an alpha channel dropped, as the DELIVER reference does.

    Args:
        modality (str): Name of the modality, e.g. ``'hha'``.
        color_type (str): mmcv ``imfrombytes`` flag: ``'color'`` (3
            channels, BGR), ``'grayscale'`` or ``'unchanged'``.
        resize_to_img (bool): A map whose size differs from the RGB image
            is resized to the RGB size with nearest interpolation (DELIVER
            event frames, low-resolution sensors) instead of raising.
            Defaults to False (sizes must match).
        backend_args (dict, optional): mmengine file backend arguments.
    """

    def __init__(self,
                 modality: str = 'hha',
                 color_type: str = 'color',
                 resize_to_img: bool = False,
                 backend_args: Optional[dict] = None) -> None:
        super().__init__(modality, backend_args)
        self.color_type = color_type
        self.resize_to_img = resize_to_img

    def read(self, path: str) -> np.ndarray:
        raw_bytes = fileio.get(path, backend_args=self.backend_args)
        image = mmcv.imfrombytes(raw_bytes, flag=self.color_type)
        if image is None:
            raise OSError(f'Cannot decode {self.modality} image {path} '
                          '(unreadable or truncated file)')
        return image.astype(np.float32)

    def from_array(self, array: np.ndarray, source: str) -> np.ndarray:
        """An 8-bit (H, W) or (H, W, C) array in mmcv's channel order,
        brought to the layout ``color_type`` decodes a file to."""
        if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
            raise TypeError(
                f'{source}: expected a uint8 numpy array (an 8-bit image), '
                f'got {getattr(array, "dtype", type(array).__name__)}')
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[..., 0]
        if self.color_type == 'color':
            if array.ndim == 2:  # grey, as decoding with 'color' tiles it
                array = np.repeat(array[..., None], 3, axis=2)
            elif array.ndim == 3 and array.shape[2] == 4:
                array = array[..., :3]  # alpha dropped, as decoding does
        elif self.color_type == 'grayscale' and array.ndim != 2:
            raise ValueError(f'{source} has shape {array.shape}; the config '
                             "loads it with color_type='grayscale': give an "
                             '(H, W) array')
        if array.ndim not in (2, 3) or (self.color_type == 'color'
                                        and array.shape[2] != 3):
            raise ValueError(f'{source} has shape {array.shape}, expected '
                             '(H, W) or (H, W, 3)')
        return array.astype(np.float32)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(modality={self.modality!r}, '
                f'color_type={self.color_type!r}, '
                f'resize_to_img={self.resize_to_img})')


@TRANSFORMS.register_module()
class LoadValidatedAnnotations(LoadAnnotations):
    """mmseg's ``LoadAnnotations`` with checks that fail before any tensor
    math: the label must exist, decode, be single-channel, match the RGB
    image's original size, fit in 8 bits (mmseg would wrap larger values
    silently), and after ``reduce_zero_label`` (0 -> ignore, c -> c-1) and
    ``label_map`` hold only class indices below ``results['num_classes']``
    or the ignore index.

    A colour label image is accepted when the dataset names the channel
    holding the class in ``results['seg_map_channel']`` (RGB(A) order:
    0 = red, as DELIVER's CARLA labels); a grey label is read as usual.

    Args:
        ignore_index (int): The ignore value. Defaults to 255.
        **kwargs: Passed to mmseg's ``LoadAnnotations``.
    """

    def __init__(self, ignore_index: int = 255, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ignore_index = ignore_index

    def _load_seg_map(self, results: dict) -> None:
        path = results['seg_map_path']
        name = sample_name(results)
        if not osp.isfile(path) and self.backend_args is None:
            raise FileNotFoundError(
                f'Sample {name}: label file {path} does not exist')
        label = mmcv.imfrombytes(
            fileio.get(path, backend_args=self.backend_args),
            flag='unchanged',
            backend=self.imdecode_backend)
        if label is None:
            raise OSError(f'Cannot decode label image {path} (unreadable or '
                          'truncated file)')
        if label.ndim == 3 and label.shape[2] == 1:
            label = label[..., 0]
        channel = results.get('seg_map_channel')
        if label.ndim == 3 and channel is not None:
            label = label[..., bgr_index(channel, label.shape[2], path)]
        if label.ndim != 2:
            raise ValueError(f'Label {path} must be a single-channel image, '
                             f'got shape {label.shape}')
        expected = results.get('ori_shape')
        if expected is not None and tuple(label.shape) != tuple(expected[:2]):
            raise ValueError(
                f'Sample {name}: label {path} is {label.shape[1]}x'
                f'{label.shape[0]} (WxH) but the RGB image is '
                f'{expected[1]}x{expected[0]}')
        if label.dtype != np.uint8:
            if label.min() < 0 or label.max() > 255:
                raise ValueError(
                    f'Label {path} ({label.dtype}) holds values outside '
                    f'0..255: min {label.min()}, max {label.max()}')
            label = label.astype(np.uint8)

        reduce_zero_label = results.get('reduce_zero_label', False)
        if self.reduce_zero_label is not None and \
                self.reduce_zero_label != reduce_zero_label:
            raise ValueError(
                f'LoadValidatedAnnotations(reduce_zero_label='
                f'{self.reduce_zero_label}) disagrees with the dataset '
                f'(reduce_zero_label={reduce_zero_label})')
        if reduce_zero_label:  # 0 -> ignore, c -> c - 1
            label = label.astype(np.int16) - 1
            label[label < 0] = self.ignore_index
            label[label == 254] = self.ignore_index
            label = label.astype(np.uint8)
        if results.get('label_map'):
            source = label.copy()
            for old_id, new_id in results['label_map'].items():
                label[source == old_id] = new_id

        num_classes = results.get('num_classes')
        if num_classes is not None:
            values = np.unique(label)
            bad = values[(values >= num_classes)
                         & (values != self.ignore_index)]
            if bad.size:
                after = ' after reduce_zero_label' if reduce_zero_label \
                    else ''
                raise ValueError(
                    f'Label {path} holds values {bad.tolist()[:10]}{after} '
                    f'outside the {num_classes} classes '
                    f'(0..{num_classes - 1}) and the ignore index '
                    f'{self.ignore_index}')
        results['gt_seg_map'] = label
        results.setdefault('seg_fields', []).append('gt_seg_map')
