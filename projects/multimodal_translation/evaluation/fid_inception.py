"""The Inception-v3 network of FID (the 2015-12-05 TensorFlow graph as
ported to PyTorch by pytorch-fid), producing 2048-d pool features.

Neither pytorch-fid nor torchvision can be used here: pytorch-fid builds on
torchvision, and the only torchvision wheels matching torch 2.13 on the
package index are CUDA builds whose compiled operators do not load with the
CPU torch this repository pins (``import torchvision`` fails). The
architecture is therefore defined below. Parameter names follow
torchvision's ``Inception3`` (``Conv2d_1a_3x3.conv.weight``,
``Mixed_7c.branch_pool.bn.running_var`` ...), so the state dict of
pytorch-fid's weights file ``pt_inception-2015-12-05-6726825d.pth`` loads
as it is; its 1008-class ``fc`` layer is dropped (only the pool features
are used).

The FID variant differs from the classification Inception-v3 in its
pooling branches: the average pools of the A, C and first E blocks ignore
the zero padding (``count_include_pad=False``, as TensorFlow), and the
last E block max-pools. Inputs are resized to 299x299 bilinearly
(``align_corners=False``) as pytorch-fid does.

No weights are downloaded: give the path of a local copy of the weights
file (pytorch-fid's release asset of that name).
"""
import os.path as osp
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS

FID_INPUT_SIZE = 299
FID_FEATURE_DIM = 2048
FID_WEIGHTS_NAME = 'pt_inception-2015-12-05-6726825d.pth'
# keys of the weights file that the feature network does not use
DROPPED_PREFIXES = ('fc.', )


class BasicConv(nn.Module):
    """Bias-free convolution, BatchNorm (eps 1e-3), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size,
                 **kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average pool that ignores the padding (TensorFlow's)."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionBlock(nn.Module):
    """Base of the mixed blocks: ``chain(x, names)`` runs the named
    convolutions one after the other."""

    def chain(self, x: torch.Tensor, *names: str) -> torch.Tensor:
        for name in names:
            x = getattr(self, name)(x)
        return x


class InceptionA(InceptionBlock):
    """35x35 block (Mixed_5b/c/d): 1x1, 5x5, double 3x3 and pool branches;
    out 224 + ``pool_features`` channels."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv(96, 96, 3, padding=1)
        self.branch_pool = BasicConv(in_channels, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch1x1(x),
            self.chain(x, 'branch5x5_1', 'branch5x5_2'),
            self.chain(x, 'branch3x3dbl_1', 'branch3x3dbl_2',
                       'branch3x3dbl_3'),
            self.branch_pool(tf_avg_pool(x))
        ], 1)


class InceptionB(InceptionBlock):
    """Grid reduction 35 -> 17 (Mixed_6a); out in + 480 channels."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch3x3(x),
            self.chain(x, 'branch3x3dbl_1', 'branch3x3dbl_2',
                       'branch3x3dbl_3'),
            F.max_pool2d(x, 3, stride=2)
        ], 1)


class InceptionC(InceptionBlock):
    """17x17 block with factorised 7x7 convolutions (Mixed_6b-e); out 768
    channels."""

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        row, col = dict(padding=(0, 3)), dict(padding=(3, 0))
        self.branch1x1 = BasicConv(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv(in_channels, c7, 1)
        self.branch7x7_2 = BasicConv(c7, c7, (1, 7), **row)
        self.branch7x7_3 = BasicConv(c7, 192, (7, 1), **col)
        self.branch7x7dbl_1 = BasicConv(in_channels, c7, 1)
        self.branch7x7dbl_2 = BasicConv(c7, c7, (7, 1), **col)
        self.branch7x7dbl_3 = BasicConv(c7, c7, (1, 7), **row)
        self.branch7x7dbl_4 = BasicConv(c7, c7, (7, 1), **col)
        self.branch7x7dbl_5 = BasicConv(c7, 192, (1, 7), **row)
        self.branch_pool = BasicConv(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dbl = [f'branch7x7dbl_{i}' for i in range(1, 6)]
        return torch.cat([
            self.branch1x1(x),
            self.chain(x, 'branch7x7_1', 'branch7x7_2', 'branch7x7_3'),
            self.chain(x, *dbl),
            self.branch_pool(tf_avg_pool(x))
        ], 1)


class InceptionD(InceptionBlock):
    """Grid reduction 17 -> 8 (Mixed_7a); out in + 512 channels."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv(in_channels, 192, 1)
        self.branch7x7x3_2 = BasicConv(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.chain(x, 'branch3x3_1', 'branch3x3_2'),
            self.chain(x, 'branch7x7x3_1', 'branch7x7x3_2', 'branch7x7x3_3',
                       'branch7x7x3_4'),
            F.max_pool2d(x, 3, stride=2)
        ], 1)


class InceptionE(InceptionBlock):
    """8x8 block with split 1x3 / 3x1 outputs (Mixed_7b, 7c); out 2048
    channels. ``max_pool``: the pool branch max-pools (the FID network's
    last block) instead of the padding-free average."""

    def __init__(self, in_channels: int, max_pool: bool = False) -> None:
        super().__init__()
        row, col = dict(padding=(0, 1)), dict(padding=(1, 0))
        self.max_pool = max_pool
        self.branch1x1 = BasicConv(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv(in_channels, 384, 1)
        self.branch3x3_2a = BasicConv(384, 384, (1, 3), **row)
        self.branch3x3_2b = BasicConv(384, 384, (3, 1), **col)
        self.branch3x3dbl_1 = BasicConv(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv(384, 384, (1, 3), **row)
        self.branch3x3dbl_3b = BasicConv(384, 384, (3, 1), **col)
        self.branch_pool = BasicConv(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.branch3x3_1(x)
        z = self.chain(x, 'branch3x3dbl_1', 'branch3x3dbl_2')
        pooled = (
            F.max_pool2d(x, 3, stride=1, padding=1)
            if self.max_pool else tf_avg_pool(x))
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(y),
            self.branch3x3_2b(y),
            self.branch3x3dbl_3a(z),
            self.branch3x3dbl_3b(z),
            self.branch_pool(pooled)
        ], 1)


@MODELS.register_module()
class FIDInceptionV3(nn.Module):
    """FID's Inception-v3: (N, 3, H, W) images in [-1, 1] -> (N, 2048)
    features of the final average pool.

    The images are resized to 299x299 (bilinear, ``align_corners=False``);
    pytorch-fid's default input handling (images in [0, 1], resized, then
    ``2x - 1``) gives the same network input, so [-1, 1] images go in
    unchanged.

    Args:
        weights (str | None): Local path of pytorch-fid's
            ``pt_inception-2015-12-05-6726825d.pth`` (a state dict with
            torchvision's ``Inception3`` key names, loaded on the CPU with
            ``weights_only=True``; its ``fc.*`` keys are dropped). ``None``
            keeps the random initialisation, whose features are
            meaningless (tests only).
    """

    def __init__(self, weights: Optional[str]) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.weights = weights
        if weights is not None:
            self.load_fid_weights(weights)
        self.eval()

    def load_fid_weights(self, path: str) -> None:
        """Load pytorch-fid's weights file; every parameter and buffer must
        be in it (BatchNorm's ``num_batches_tracked`` excepted), and it may
        hold nothing else besides ``fc.*``."""
        path = osp.expanduser(path)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'FIDInceptionV3: weights file {path!r} not found. It must be '
                f'a local copy of pytorch-fid\'s {FID_WEIGHTS_NAME} (nothing '
                'is downloaded); set `weights` to its path')
        state = torch.load(path, map_location='cpu', weights_only=True)
        if isinstance(state, dict) and isinstance(
                state.get('state_dict'), dict):
            state = state['state_dict']
        if not isinstance(state, dict):
            raise TypeError(f'FIDInceptionV3: {path} holds a '
                            f'{type(state).__name__}, expected a state dict')
        state = {
            key: value
            for key, value in state.items()
            if not key.startswith(DROPPED_PREFIXES)
        }
        result = self.load_state_dict(state, strict=False)
        missing = [
            key for key in result.missing_keys
            if not key.endswith('num_batches_tracked')
        ]
        if missing or result.unexpected_keys:
            raise KeyError(
                f'FIDInceptionV3: {path} does not match the FID Inception-v3 '
                f'(expected {FID_WEIGHTS_NAME}): {len(missing)} missing keys '
                f'{missing[:5]}, {len(result.unexpected_keys)} unexpected '
                f'keys {result.unexpected_keys[:5]}')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f'FIDInceptionV3 takes (N, 3, H, W) images, got '
                             f'shape {tuple(x.shape)}')
        x = F.interpolate(
            x, (FID_INPUT_SIZE, FID_INPUT_SIZE),
            mode='bilinear',
            align_corners=False)
        for name in ('Conv2d_1a_3x3', 'Conv2d_2a_3x3', 'Conv2d_2b_3x3'):
            x = getattr(self, name)(x)
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ('5b', '5c', '5d', '6a', '6b', '6c', '6d', '6e', '7a',
                     '7b', '7c'):
            x = getattr(self, f'Mixed_{name}')(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
