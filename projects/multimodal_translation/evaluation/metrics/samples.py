"""What the translation evaluators read from a data sample.

Each element of ``data_samples`` given to ``process`` is a dict (mmengine's
evaluator turns ``BaseDataElement`` samples into dicts with ``to_dict``;
elements are accepted too) with:

* ``pred_images``: a mapping ``{output_name: image}`` with one generated
  image per model output, e.g. ``{'branch0': ..., 'branch1': ...,
  'ens': ...}`` for the two branches and the ensemble. Every sample must
  have the same output names.
* ``gt_image``: the target image.

Images are (C, H, W) torch tensors (or NumPy arrays) in [-1, 1], the
range of the generator's tanh and of the targets normalised with mean
and std 0.5 on the [0, 1] scale; prediction and target have the same
shape. The optional ``img_path`` or ``sample_idx`` name the sample in
error messages. The key names can be changed with the evaluators'
``pred_key`` / ``gt_key``.
"""
from collections.abc import Mapping
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from ..feature_extractor import RANGE_TOLERANCE

PRED_KEY = 'pred_images'
GT_KEY = 'gt_image'


def sample_label(sample: dict, index: int) -> str:
    """How errors name a sample: its ``img_path`` or ``sample_idx``, else
    its position in the batch."""
    for key in ('img_path', 'sample_idx'):
        if sample.get(key) is not None:
            return f'{key}={sample[key]}'
    return f'#{index} of the batch'


def as_image(value, what: str) -> torch.Tensor:
    """``value`` as a float32 CPU (C, H, W) tensor checked to lie in
    [-1, 1]; errors name ``what``."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f'{what} must be a (C, H, W) tensor, got '
                        f'{type(value).__name__}')
    if value.dim() != 3:
        raise ValueError(f'{what} must be a (C, H, W) image, got shape '
                         f'{tuple(value.shape)}')
    value = value.detach().cpu().float()
    low, high = float(value.min()), float(value.max())
    if low < -1 - RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        raise ValueError(f'{what} has values in [{low:.4g}, {high:.4g}]; '
                         'expected an image in [-1, 1]')
    return value


def read_sample(
    sample,
    index: int,
    pred_key: str = PRED_KEY,
    gt_key: str = GT_KEY,
    outputs: Optional[Sequence[str]] = None,
    channels: Optional[int] = None
) -> Tuple[str, Dict[str, torch.Tensor], torch.Tensor]:
    """Check and unpack one data sample.

    Args:
        sample (dict | BaseDataElement): The sample (see the module doc).
        index (int): Its position in the batch (for errors).
        pred_key (str): Key of the generated images.
        gt_key (str): Key of the target image.
        outputs (Sequence[str], optional): Outputs to read (all others are
            ignored); ``None`` reads every output of the sample.
        channels (int, optional): Required number of channels.

    Returns:
        tuple: The sample's label, ``{output_name: (C, H, W) tensor}`` in
        the sample's order (or that of ``outputs``), and the target.
    """
    if hasattr(sample, 'to_dict'):
        sample = sample.to_dict()
    if not isinstance(sample, Mapping):
        raise TypeError(f'Data sample #{index}: expected a dict or a data '
                        f'element, got {type(sample).__name__}')
    label = sample_label(sample, index)
    for key in (pred_key, gt_key):
        if key not in sample:
            raise KeyError(f'Data sample {label} has no {key!r} (keys: '
                           f'{sorted(sample)}); the translation model must '
                           f'set {pred_key!r} (dict output name -> image) '
                           f'and {gt_key!r}')
    preds = sample[pred_key]
    if not isinstance(preds, Mapping) or not preds:
        raise TypeError(f'Data sample {label}: {pred_key!r} must be a '
                        'non-empty dict {output_name: (C, H, W) image}, got '
                        f'{type(preds).__name__}')
    names = list(preds) if outputs is None else list(outputs)
    missing = [name for name in names if name not in preds]
    if missing:
        raise KeyError(f'Data sample {label}: {pred_key!r} has no output(s) '
                       f'{missing}; it has {list(preds)}')
    gt = as_image(sample[gt_key], f'Data sample {label}: {gt_key!r}')
    if channels is not None and gt.shape[0] != channels:
        raise ValueError(f'Data sample {label}: {gt_key!r} has '
                         f'{gt.shape[0]} channels, expected {channels}')
    images = {}
    for name in names:
        what = f'Data sample {label}: {pred_key}[{name!r}]'
        image = as_image(preds[name], what)
        if image.shape != gt.shape:
            raise ValueError(f'{what} has shape {tuple(image.shape)}, the '
                             f'target {tuple(gt.shape)}')
        images[name] = image
    return label, images, gt


def check_same_outputs(results: Sequence[dict], key: str) -> list:
    """The output names of ``results[i][key]`` (equal for every result);
    raises if samples disagree."""
    names = list(results[0][key])
    for result in results[1:]:
        if set(result[key]) != set(names):
            raise ValueError(f'Evaluated samples have different outputs: '
                             f'{names} vs {list(result[key])}; set '
                             '`outputs` to evaluate a common subset')
    return names
