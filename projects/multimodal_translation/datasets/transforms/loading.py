"""Loading of Taskonomy domains for image-to-image translation.

Every domain of a sample (the sources and the target) is read from its PNG
in the stored format, checked, and returned as a float32 (3, H, W) array in
[-1, 1]. A stored value ``v`` is mapped as follows:

=====================  ====  ========  ====================================
domain                 bits  channels  v -> [-1, 1]
=====================  ====  ========  ====================================
rgb                    8     3         2 * v / 255 - 1
normal                 8     3         2 * v / 255 - 1 (127 = zero)
reshading              8     1 or 3    2 * v / 255 - 1
principal_curvature    8     3         2 * v / 255 - 1 (127 = zero)
edge_texture           16    1         2 * min(v, 11355) / 11355 - 1
edge_occlusion         16    1         2 * min(v, 11584) / 11584 - 1
depth_euclidean        16    1         2 * log(1 + v) / 11.1 - 1
depth_zbuffer          16    1         2 * log(1 + v) / 11.1 - 1
=====================  ====  ========  ====================================

Where the facts come from:

* Frames are 512 x 512 (Taskonomy's ``data/README.md``, StanfordVL/taskonomy:
  "RGB images in 512x512 resolution"); depth is stored in units of 1/512 m
  with a 128 m range, normals and curvatures are centred on 127.
* Bit depths and channel counts: the Omnidata/Taskonomy loaders
  (EPFL-VILAB omnidata-tools) read depth and edge maps as 16-bit
  single-channel PNGs, and reshading as an 8-bit image of which they keep
  the first channel when it has more; so a grey and a 3-channel reshading
  file are both accepted here.
* Fixed maxima and the log: TokenFusion's translation code maps depth to
  ``log(1 + v)`` and divides depth and edges by fixed maxima (11.1 for the
  log depth, 11355 and 11584 raw units for texture and occlusion edges) to
  0..255, then to [-1, 1] like the 8-bit domains. Note that
  ``log(1 + 65535) = 11.09``: the largest storable depth maps to 0.998, so
  depth never quite reaches 1.

Every domain becomes 3 channels: a single-channel map is repeated over 3
identical channels, and a 3-channel reshading image is kept as stored. The
reference does the same (it repeats 2-D maps to 3 channels before
normalising with a 3-channel mean and std) because its generator shares
one 3-channel patch embedding across the input modalities; the sources of a
sample stack into ``M * 3`` input channels.

Two deviations from the reference: edge values above the fixed maximum
are clipped to 1 (the reference's cast of the scaled value to 8 bits
overflows for them, which in practice wraps them around to dark values),
and the scaled 16-bit domains keep full float precision (the reference
truncates them to 256 levels before its resize;
``quantize_like_reference=True`` reproduces that truncation).
"""
import os.path as osp
from typing import Dict, NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio
from mmseg.registry import TRANSFORMS


class DomainFormat(NamedTuple):
    """How a Taskonomy domain is stored and scaled."""
    bits: int  # bit depth of the PNG
    channels: Tuple[int, ...]  # accepted channel counts
    maximum: float  # value (after the log, if any) that maps to 1
    log: bool = False  # map v to log(1 + v) before scaling


DOMAIN_FORMATS: Dict[str, DomainFormat] = {
    'rgb': DomainFormat(8, (3, ), 255.0),
    'normal': DomainFormat(8, (3, ), 255.0),
    'reshading': DomainFormat(8, (1, 3), 255.0),
    'principal_curvature': DomainFormat(8, (3, ), 255.0),
    'edge_texture': DomainFormat(16, (1, ), 11355.0),
    'edge_occlusion': DomainFormat(16, (1, ), 11584.0),
    'depth_euclidean': DomainFormat(16, (1, ), 11.1, log=True),
    'depth_zbuffer': DomainFormat(16, (1, ), 11.1, log=True),
}

_BITS = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}


def domain_format(domain: str) -> DomainFormat:
    """The :class:`DomainFormat` of ``domain``; a clear error for names
    the loader does not know."""
    if domain not in DOMAIN_FORMATS:
        raise ValueError(f'Unknown Taskonomy domain {domain!r}; expected one '
                         f'of {sorted(DOMAIN_FORMATS)}')
    return DOMAIN_FORMATS[domain]


def describe_format(domain: str) -> str:
    """E.g. ``'16-bit single-channel PNG'`` for error messages."""
    fmt = domain_format(domain)
    names = {1: 'single-channel', 3: '3-channel'}
    channels = ' or '.join(names.get(c, f'{c}-channel') for c in fmt.channels)
    return f'{fmt.bits}-bit {channels} PNG'


def scale_domain(array: np.ndarray,
                 domain: str,
                 quantize_like_reference: bool = False) -> np.ndarray:
    """Map stored values to [-1, 1] (see the module table).

    Args:
        array (np.ndarray): Stored values, any shape.
        domain (str): The domain, a key of :data:`DOMAIN_FORMATS`.
        quantize_like_reference (bool): Truncate to 256 levels first, as
            the reference's 8-bit intermediate image does.

    Returns:
        np.ndarray: float32 array of the same shape in [-1, 1].
    """
    fmt = domain_format(domain)
    values = array.astype(np.float64)
    if fmt.log:
        values = np.log1p(values)
    values = np.clip(values / fmt.maximum, 0.0, 1.0)
    if quantize_like_reference:
        values = np.floor(values * 255.0) / 255.0
    return (2.0 * values - 1.0).astype(np.float32)


def read_domain(path: str,
                domain: str,
                image_size: Optional[Sequence[int]] = None,
                quantize_like_reference: bool = False,
                backend_args: Optional[dict] = None) -> np.ndarray:
    """Read one domain file as a float32 (3, H, W) array in [-1, 1].

    Args:
        path (str): The PNG file.
        domain (str): Its domain, a key of :data:`DOMAIN_FORMATS`.
        image_size (Sequence[int], optional): Expected (H, W); None
            accepts any size.
        quantize_like_reference (bool): See :func:`scale_domain`.
        backend_args (dict, optional): mmengine file backend arguments.

    Raises:
        FileNotFoundError: the file does not exist.
        OSError: the file cannot be decoded (not an image, truncated).
        ValueError: wrong bit depth, channel count or size.
    """
    fmt = domain_format(domain)
    expected = describe_format(domain)
    if backend_args is None and not osp.isfile(path):
        raise FileNotFoundError(f'{domain} file {path} does not exist')
    raw = fileio.get(path, backend_args=backend_args)
    array = cv2.imdecode(np.frombuffer(raw, np.uint8),
                         cv2.IMREAD_UNCHANGED) if raw else None
    if array is None:
        raise OSError(f'Cannot decode {domain} file {path} (unreadable or '
                      f'truncated); expected a {expected}')
    bits = _BITS.get(array.dtype)
    if bits != fmt.bits:
        stored = f'{bits}-bit' if bits else f'of type {array.dtype}'
        raise ValueError(f'{domain} file {path} is {stored}, expected a '
                         f'{expected}')
    channels = 1 if array.ndim == 2 else array.shape[2]
    if channels not in fmt.channels:
        raise ValueError(f'{domain} file {path} has {channels} channels, '
                         f'expected a {expected}')
    height, width = array.shape[:2]
    if image_size is not None and (height, width) != tuple(image_size):
        raise ValueError(
            f'{domain} file {path} is {width}x{height} (WxH), expected '
            f'{image_size[1]}x{image_size[0]}')
    if channels == 1:
        array = array.reshape(1, height, width)
    else:  # OpenCV decodes to BGR
        array = array[..., ::-1].transpose(2, 0, 1)
    scaled = scale_domain(array, domain, quantize_like_reference)
    if channels == 1:
        scaled = np.repeat(scaled, 3, axis=0)
    return np.ascontiguousarray(scaled)


@TRANSFORMS.register_module()
class LoadTranslationDomains(BaseTransform):
    """Load the sources and the target of a translation sample.

    Required keys: ``sources`` (ordered domain names), ``target``,
    ``source_paths`` (one per source), ``target_path``; optional
    ``image_size`` (expected (H, W), set by the datasets).

    Added keys: ``source_imgs`` (list of float32 (3, H, W) arrays in
    [-1, 1], in source order), ``target_img`` (float32 (3, H, W)),
    ``ori_shape`` and ``img_shape`` ((H, W)).

    Every file is checked against its domain's format (see the module
    table) and all domains of a sample must have the same size.

    Args:
        image_size (Sequence[int], optional): Expected (H, W) of every
            file; overrides the sample's ``image_size``. Defaults to None
            (use the sample's, or only require equal sizes).
        quantize_like_reference (bool): Truncate the scaled values to 256
            levels like the reference. Defaults to False.
        backend_args (dict, optional): mmengine file backend arguments.
    """

    def __init__(self,
                 image_size: Optional[Sequence[int]] = None,
                 quantize_like_reference: bool = False,
                 backend_args: Optional[dict] = None) -> None:
        self.image_size = tuple(image_size) if image_size else None
        self.quantize_like_reference = quantize_like_reference
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        for key in ('sources', 'target', 'source_paths', 'target_path'):
            if key not in results:
                raise KeyError(f'LoadTranslationDomains needs {key!r} in the '
                               'sample; use TaskonomyDataset or '
                               'SyntheticTranslationDataset')
        sources = tuple(results['sources'])
        source_paths = list(results['source_paths'])
        if len(sources) != len(source_paths):
            raise ValueError(f'Sample {results.get("frame")}: '
                             f'{len(sources)} sources {sources} but '
                             f'{len(source_paths)} source paths')
        size = self.image_size or results.get('image_size')
        domains = list(zip(sources, source_paths))
        domains.append((results['target'], results['target_path']))
        arrays = [
            read_domain(path, domain, size, self.quantize_like_reference,
                        self.backend_args) for domain, path in domains
        ]
        shapes = {path: a.shape[1:] for (_, path), a in zip(domains, arrays)}
        if len(set(shapes.values())) != 1:
            listed = ', '.join(f'{path}: {s[1]}x{s[0]}'
                               for path, s in shapes.items())
            raise ValueError(f'The domains of sample '
                             f'{results.get("frame")} differ in size '
                             f'(WxH): {listed}')
        results['source_imgs'] = arrays[:-1]
        results['target_img'] = arrays[-1]
        results['ori_shape'] = tuple(arrays[-1].shape[1:])
        results['img_shape'] = tuple(arrays[-1].shape[1:])
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(image_size={self.image_size}, '
                'quantize_like_reference='
                f'{self.quantize_like_reference})')
