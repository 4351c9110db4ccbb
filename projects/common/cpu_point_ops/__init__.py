"""CPU-capable mmcv point operators (and sparse convolution) for mmdet3d.

Importing this package installs dispatchers that keep mmcv's CUDA kernels for
CUDA tensors and use the pure-torch operators of :mod:`.torch_ops` (point
ops) and :mod:`.sparse_conv` (sparse convolution) for everything else (see
:mod:`.dispatch` for what is patched). Importing it again, or calling
:func:`install` again, is harmless.
"""
from . import sparse_conv, torch_ops
from .dispatch import DISPATCHERS, ORIGINALS, install

install()

__all__ = ['sparse_conv', 'torch_ops', 'install', 'ORIGINALS', 'DISPATCHERS']
