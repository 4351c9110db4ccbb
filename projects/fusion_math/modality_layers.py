"""Layers over a modality-stacked batch.

Every tensor of a fused backbone stacks its M modalities into the batch
dimension: ``(M * B, ...)`` with modality m at rows ``m*B .. (m+1)*B``.
A *shared* layer is an ordinary layer applied once to the whole stack. A
*per-modality* layer keeps one set of parameters per modality (leading
dimension M of every parameter) and is still applied in one vectorised call
(batched matmul, grouped conv, broadcast affine), never in a Python loop over
modalities.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class ModalityLayerNorm(nn.Module):
    """LayerNorm with one affine transform per modality.

    Args:
        num_modalities (int): M.
        num_channels (int): C, the normalised last dimension.
        eps (float): As ``nn.LayerNorm``. Defaults to 1e-6 (MiT).
        shared (bool): One affine transform for all modalities (the Table 8
            ablation of TokenFusion). Defaults to False.

    Parameters: ``weight`` and ``bias`` of shape (M, C), or (1, C) if
    shared. Input (M*B, ..., C) -> output of the same shape.
    """

    def __init__(self,
                 num_modalities: int,
                 num_channels: int,
                 eps: float = 1e-6,
                 shared: bool = False) -> None:
        super().__init__()
        self.num_modalities = num_modalities
        self.num_channels = num_channels
        self.eps = eps
        rows = 1 if shared else num_modalities
        self.weight = nn.Parameter(torch.ones(rows, num_channels))
        self.bias = nn.Parameter(torch.zeros(rows, num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.num_channels
        if self.weight.shape[0] == 1:
            return F.layer_norm(x, (c, ), self.weight[0], self.bias[0],
                                self.eps)
        # One fused layer_norm per modality block of the stack: a single
        # normalisation followed by a broadcast affine would keep one more
        # full-size tensor for the backward pass (~0.5 GB for MiT-B2 at
        # 480x640, batch 2), which is what the stacking saves elsewhere.
        blocks = x.reshape(self.num_modalities, -1, c).unbind(0)
        out = torch.cat([
            F.layer_norm(block, (c, ), self.weight[m], self.bias[m], self.eps)
            for m, block in enumerate(blocks)
        ])
        return out.reshape(x.shape)

    def extra_repr(self) -> str:
        return (f'{self.num_channels}, modalities={self.num_modalities}, '
                f'shared={self.weight.shape[0] == 1}, eps={self.eps}')


class ModalityLinear(nn.Module):
    """Linear layer, shared by the modalities or one per modality.

    Parameters: ``weight`` (out, in) and ``bias`` (out, ) if shared, else
    (M, out, in) and (M, out). Input (M*B, ..., in) -> (M*B, ..., out).
    """

    def __init__(self,
                 num_modalities: int,
                 in_features: int,
                 out_features: int,
                 bias: bool = True,
                 shared: bool = True) -> None:
        super().__init__()
        self.num_modalities = num_modalities
        self.in_features = in_features
        self.out_features = out_features
        self.shared = shared
        lead = () if shared else (num_modalities, )
        self.weight = nn.Parameter(
            torch.empty(*lead, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(*lead, out_features)) \
            if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Linear's initialisation, per modality
        bound = 1 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shared:
            return F.linear(x, self.weight, self.bias)
        shape = x.shape
        x = x.reshape(self.num_modalities, -1, self.in_features)
        w = self.weight.transpose(1, 2)
        y = torch.baddbmm(self.bias[:, None], x, w) \
            if self.bias is not None else torch.bmm(x, w)
        return y.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (f'{self.in_features}, {self.out_features}, '
                f'modalities={self.num_modalities}, shared={self.shared}')


class ModalityConv2d(nn.Module):
    """Conv2d, shared by the modalities or one per modality.

    A per-modality conv moves the modality axis into channels and runs one
    grouped convolution. Parameters: ``weight`` (out, in/groups, k, k) and
    ``bias`` (out, ) if shared, else with a leading M dimension.
    Input (M*B, in, H, W) -> (M*B, out, H', W').
    """

    def __init__(self,
                 num_modalities: int,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 stride: int = 1,
                 padding: int = 0,
                 groups: int = 1,
                 bias: bool = True,
                 shared: bool = True) -> None:
        super().__init__()
        self.num_modalities = num_modalities
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.padding = padding
        self.groups = groups
        self.shared = shared
        lead = () if shared else (num_modalities, )
        self.weight = nn.Parameter(
            torch.empty(*lead, out_channels, in_channels // groups,
                        kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(*lead, out_channels)) \
            if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan_in = self.weight.shape[-3] * self.weight.shape[-1]**2
        bound = 1 / math.sqrt(fan_in)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shared:
            return F.conv2d(x, self.weight, self.bias, self.stride,
                            self.padding, 1, self.groups)
        m = self.num_modalities
        mb, c, h, w = x.shape
        x = x.reshape(m, mb // m, c, h, w).transpose(0, 1)
        x = x.reshape(mb // m, m * c, h, w)
        y = F.conv2d(x, self.weight.flatten(0, 1),
                     self.bias.flatten() if self.bias is not None else None,
                     self.stride, self.padding, 1, m * self.groups)
        y = y.reshape(mb // m, m, self.out_channels, *y.shape[-2:])
        return y.transpose(0, 1).reshape(mb, self.out_channels, *y.shape[-2:])

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, {self.out_channels}, '
                f'kernel_size={self.weight.shape[-1]}, stride={self.stride}, '
                f'groups={self.groups}, modalities={self.num_modalities}, '
                f'shared={self.shared}')


def split_modalities(x: torch.Tensor, num_modalities: int,
                     in_channels: int) -> torch.Tensor:
    """(B, M*C, H, W), the data preprocessor's channel concatenation ->
    the modality stack (M*B, C, H, W), modality m at rows m*B..(m+1)*B."""
    b, c, h, w = x.shape
    if c != num_modalities * in_channels:
        raise ValueError(
            f'the backbone expects {num_modalities} modalities x '
            f'{in_channels} channels = {num_modalities * in_channels} input '
            f'channels, got {c}')
    x = x.reshape(b, num_modalities, in_channels, h, w).transpose(0, 1)
    return x.reshape(num_modalities * b, in_channels, h, w)
