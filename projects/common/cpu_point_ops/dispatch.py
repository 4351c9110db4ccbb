"""Route mmcv's CUDA-only point operators to pure torch off the GPU.

mmcv 2.1.0 implements ``furthest_point_sample``,
``furthest_point_sample_with_dist``, ``gather_points``, ``ball_query``,
``grouping_operation``, ``three_nn``, ``three_interpolate``, ``knn``,
``points_in_boxes_part``, ``points_in_boxes_all``, ``dynamic_scatter`` and
the sparse convolution for CUDA only; on CPU tensors they fail
(``implementation for device cpu not found``, ``torch.cuda.IntTensor`` not
available, or a CUDA assertion), so mmdet3d's PointNet++ backbone,
GroupFree3D head and voxel models cannot run on CPU.

:func:`install` wraps each of these public objects in a dispatcher that calls
mmcv's original when the first tensor argument is on CUDA and the matching
function of :mod:`projects.common.cpu_point_ops.torch_ops` (or, for the sparse
convolution, :mod:`.sparse_conv`) otherwise (CPU, or
any device without an mmcv kernel, since the torch versions are
device-agnostic).

What is patched, and why:

- The op objects themselves (``FurthestPointSampling.apply``,
  ``GatherPoints.apply``, ..., the plain functions ``points_in_boxes_part``
  and ``points_in_boxes_all``) are replaced wherever a module attribute
  holds them: ``mmcv.ops``, the defining modules
  (``mmcv.ops.gather_points`` ...), and every module that did
  ``from mmcv.ops import gather_points`` before we ran. To reach those,
  :func:`install` imports ``mmdet3d.models`` and ``mmdet3d.structures`` and
  then scans all loaded modules whose names start with
  :data:`SCANNED_PREFIXES`, replacing attributes that *are* an original
  (identity, or equality for the bound ``Function.apply`` methods). Modules
  imported later get the dispatchers through ``mmcv.ops``; call
  :func:`install` again after importing a module that bound an original
  before the first call.
- ``PointsSampler`` (D-FPS / F-FPS / FS) and ``QueryAndGroup`` are not
  patched: they call the module-level names ``furthest_point_sample``,
  ``furthest_point_sample_with_dist`` (``mmcv.ops.points_sampler``) and
  ``ball_query``, ``knn``, ``grouping_operation`` (``mmcv.ops.group_points``)
  at run time, which are replaced. This also puts the FPS dispatch above
  ``FurthestPointSampling.forward``, whose ``torch.cuda.IntTensor``
  allocation is what fails on CPU.
- ``dynamic_scatter`` (``mmcv.ops.scatter_points``): mmcv's
  ``DynamicScatter`` module (mmdet3d's dynamic voxel encoders, MVX-Net's
  ``DynamicVFE``) calls it there.
- The sparse convolution's ``get_indice_pairs`` (``mmcv.ops.sparse_ops``)
  and ``indice_conv`` / ``indice_subm_conv`` / ``indice_inverse_conv``
  (``mmcv.ops.sparse_functional``) go to :mod:`.sparse_conv`: mmcv's
  ``SparseConvolution`` calls them through those modules, so that
  ``SparseConv3d``, ``SubMConv3d`` and ``SparseInverseConv3d`` (mmdet3d's
  ``SparseEncoder``) run on CPU tensors. ``fused_indice_conv`` (``fused_bn``)
  is not patched.
- ``points_in_boxes_cpu`` has a CPU kernel and is left alone; mmdet3d's box
  structures call ``points_in_boxes_part``/``_all`` through module
  references in ``mmdet3d.structures.bbox_3d.base_box3d``, which the scan
  replaces.

The originals stay reachable as ``ORIGINALS[name]`` and as the
``original`` attribute of each dispatcher; ``DISPATCHERS[name]`` holds the
dispatchers and ``PATCHED`` the ``(module name, attribute)`` pairs replaced.
Installing is idempotent.
"""
import importlib
import inspect
import sys
from typing import Callable, Dict, Set, Tuple

from torch import Tensor

from . import sparse_conv, torch_ops

#: op name -> mmcv module that defines its public object.
OP_MODULES: Dict[str, str] = {
    'furthest_point_sample': 'mmcv.ops.furthest_point_sample',
    'furthest_point_sample_with_dist': 'mmcv.ops.furthest_point_sample',
    'gather_points': 'mmcv.ops.gather_points',
    'ball_query': 'mmcv.ops.ball_query',
    'grouping_operation': 'mmcv.ops.group_points',
    'three_nn': 'mmcv.ops.three_nn',
    'three_interpolate': 'mmcv.ops.three_interpolate',
    'knn': 'mmcv.ops.knn',
    'points_in_boxes_part': 'mmcv.ops.points_in_boxes',
    'points_in_boxes_all': 'mmcv.ops.points_in_boxes',
    'dynamic_scatter': 'mmcv.ops.scatter_points',
    # sparse convolution (voxel models such as MVX-Net's SparseEncoder);
    # the pure-torch versions are in :mod:`.sparse_conv`
    'get_indice_pairs': 'mmcv.ops.sparse_ops',
    'indice_conv': 'mmcv.ops.sparse_functional',
    'indice_subm_conv': 'mmcv.ops.sparse_functional',
    'indice_inverse_conv': 'mmcv.ops.sparse_functional',
}

#: Loaded modules with these name prefixes are scanned for references.
SCANNED_PREFIXES: Tuple[str, ...] = ('mmcv', 'mmdet3d', 'projects')

#: Modules imported before scanning so their references exist.
PRELOADED_MODULES: Tuple[str, ...] = ('mmcv.ops', 'mmdet3d.models',
                                      'mmdet3d.structures')

ORIGINALS: Dict[str, Callable] = {}
DISPATCHERS: Dict[str, Callable] = {}
PATCHED: Set[Tuple[str, str]] = set()


def _first_tensor(args: tuple, kwargs: dict):
    """The tensor that decides the device: the first tensor argument."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, Tensor):
            return value
    return None


def make_dispatcher(name: str, original: Callable,
                    fallback: Callable) -> Callable:
    """A function calling ``original`` for CUDA inputs, else ``fallback``.

    Args:
        name (str): Public op name, used as the dispatcher's name.
        original (Callable): mmcv's op.
        fallback (Callable): The pure-torch op with the same signature.

    Returns:
        Callable: The dispatcher, with ``original`` and ``fallback``
        attributes.
    """

    def dispatcher(*args, **kwargs):
        tensor = _first_tensor(args, kwargs)
        if tensor is not None and tensor.is_cuda:
            return original(*args, **kwargs)
        return fallback(*args, **kwargs)

    dispatcher.__name__ = dispatcher.__qualname__ = name
    dispatcher.__module__ = __name__
    dispatcher.__doc__ = (
        f'mmcv ``{name}`` on CUDA tensors, ``{fallback.__module__}.{name}`` '
        'otherwise.'
        f'\n\n{inspect.getdoc(fallback)}')
    dispatcher.__signature__ = inspect.signature(fallback)
    dispatcher.original = original
    dispatcher.fallback = fallback
    return dispatcher


def _is_original(value, original: Callable) -> bool:
    if value is original:
        return True
    # ``Function.apply`` is a bound classmethod: compare by equality
    return inspect.ismethod(value) and value == original


def _collect_originals() -> None:
    for name, module_name in OP_MODULES.items():
        if name in ORIGINALS:
            continue
        current = getattr(importlib.import_module(module_name), name)
        # a dispatcher from an earlier copy of this module wraps the original
        original = getattr(current, 'original', current)
        ORIGINALS[name] = original
        fallback = getattr(torch_ops, name, None) or getattr(sparse_conv, name)
        DISPATCHERS[name] = make_dispatcher(name, original, fallback)


def install(prefixes: Tuple[str, ...] = SCANNED_PREFIXES) -> int:
    """Replace every reference to the mmcv originals by the dispatchers.

    Args:
        prefixes (tuple[str]): Names of the loaded modules to scan (prefix
            match). Defaults to :data:`SCANNED_PREFIXES`.

    Returns:
        int: Number of module attributes replaced by this call (0 when
        everything was already patched).
    """
    for module_name in PRELOADED_MODULES:
        importlib.import_module(module_name)
    _collect_originals()
    replaced = 0
    for module_name, module in list(sys.modules.items()):
        if module is None or not module_name.startswith(prefixes):
            continue
        try:
            namespace = vars(module)
        except TypeError:
            continue
        for attr, value in list(namespace.items()):
            if not callable(value):
                continue
            for name, original in ORIGINALS.items():
                if _is_original(value, original):
                    setattr(module, attr, DISPATCHERS[name])
                    PATCHED.add((module_name, attr))
                    replaced += 1
                    break
    return replaced
