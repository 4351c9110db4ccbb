"""Image features for FID / KID from any torch network."""
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
from mmseg.registry import MODELS

# tolerance of the [-1, 1] range checks (float rounding of normalised
# images)
RANGE_TOLERANCE = 1e-3

Images = Union[torch.Tensor, Sequence[torch.Tensor]]


def check_image_range(image: torch.Tensor, what: str) -> None:
    """Raise if ``image`` has values outside [-1, 1] (up to rounding)."""
    low, high = float(image.min()), float(image.max())
    if low < -1 - RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        raise ValueError(f'{what} has values in [{low:.4g}, {high:.4g}]; '
                         'expected images in [-1, 1] ((x / 255 - 0.5) / 0.5 '
                         'for 8-bit images)')


class FIDFeatureExtractor:
    """Maps RGB images in [-1, 1] to one feature vector each, with a torch
    network run in eval mode without gradients.

    The network takes an (N, 3, H, W) float tensor in [-1, 1] and returns
    (N, D) features ((N, D, 1, 1) is accepted too). For FID / KID as
    published that is :class:`FIDInceptionV3` with its weights file (D =
    2048); any module with that interface plugs in (a config dict is built
    from mmseg's ``MODELS``).

    Args:
        network (nn.Module | dict): The feature network or its config,
            e.g. ``dict(type='FIDInceptionV3', weights='<path>.pth')``.
        batch_size (int): Images per forward pass. Defaults to 50.
        device (str): Where the network runs. Defaults to ``'cpu'``.
        feature_dim (int, optional): Expected D; checked when given.
    """

    def __init__(self,
                 network: Union[nn.Module, dict],
                 batch_size: int = 50,
                 device: str = 'cpu',
                 feature_dim: Optional[int] = None) -> None:
        if isinstance(network, dict):
            network = MODELS.build(network)
        if not isinstance(network, nn.Module):
            raise TypeError(f'FIDFeatureExtractor needs an nn.Module or its '
                            f'config dict, got {type(network).__name__}')
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        self.network = network.to(device).eval()
        self.batch_size = batch_size
        self.device = device
        self.feature_dim = feature_dim

    def _batches(self, images: Images) -> List[torch.Tensor]:
        """Runs of consecutive equal-shape images, ``batch_size`` at most,
        as (n, 3, H, W) tensors."""
        if isinstance(images, torch.Tensor):
            if images.dim() != 4 or images.shape[1] != 3:
                raise ValueError(f'Expected (N, 3, H, W) RGB images, got '
                                 f'shape {tuple(images.shape)}')
            images = list(images)
        batches, run = [], []
        for index, image in enumerate(images):
            if not isinstance(image, torch.Tensor) or image.dim() != 3 \
                    or image.shape[0] != 3:
                shape = tuple(getattr(image, 'shape', ()))
                raise ValueError(f'Image {index}: expected a (3, H, W) RGB '
                                 f'tensor, got {type(image).__name__} of '
                                 f'shape {shape}')
            if run and (image.shape != run[0].shape
                        or len(run) == self.batch_size):
                batches.append(torch.stack(run))
                run = []
            run.append(image)
        if run:
            batches.append(torch.stack(run))
        return batches

    @torch.no_grad()
    def __call__(self, images: Images) -> np.ndarray:
        """Features of ``images``: an (N, 3, H, W) tensor or a sequence of
        (3, H, W) tensors (sizes may differ between images), in [-1, 1].

        Returns:
            np.ndarray: (N, D) float64 features, in the input order.
        """
        features = []
        for batch in self._batches(images):
            check_image_range(batch, 'FIDFeatureExtractor input')
            out = self.network(batch.to(self.device, torch.float32))
            if out.dim() == 4 and out.shape[2:] == (1, 1):
                out = out.flatten(1)
            if out.dim() != 2 or out.shape[0] != batch.shape[0]:
                raise ValueError(
                    f'{type(self.network).__name__} returned features of '
                    f'shape {tuple(out.shape)} for {batch.shape[0]} images; '
                    'expected (N, D) or (N, D, 1, 1)')
            if self.feature_dim is not None \
                    and out.shape[1] != self.feature_dim:
                raise ValueError(
                    f'{type(self.network).__name__} returned {out.shape[1]}'
                    f'-d features, expected {self.feature_dim}')
            features.append(out.double().cpu().numpy())
        if not features:
            raise ValueError('FIDFeatureExtractor got no images')
        return np.concatenate(features)
