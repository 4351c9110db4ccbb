"""Training-time corruption of one modality (missing / noisy modality
augmentation)."""
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from .formatting import MULTIMODAL_META_KEYS

# Keys that ``RandomModalityCorruption`` adds; pass
# ``PackMultiModalSegInputs(meta_keys=CORRUPTION_META_KEYS)`` to carry them
# into the packed metainfo.
CORRUPTION_META_KEYS = MULTIMODAL_META_KEYS + ('corrupted_modality',
                                               'corruption_mode')

# Value range (low, high) of the raw modalities as the loaders store them.
# Depth has no fixed range (millimetres, metres, 8-bit, ...): by default the
# range of the sample's own depth map is used.
DEFAULT_VALUE_RANGES = dict(rgb=(0., 255.), hha=(0., 255.))

MODES = ('zero', 'noise', 'replace')


@TRANSFORMS.register_module()
class RandomModalityCorruption(BaseTransform):
    """With probability ``prob`` per sample, corrupt one randomly chosen
    modality of the sample.

    The modality is picked uniformly among those of ``modalities`` that the
    sample holds (``results['modalities']``). ``'rgb'`` lives in
    ``results['img']``, any other modality ``m`` in ``results[m]`` (as
    ``LoadDepthFromFile`` / ``LoadModalityImageFromFile`` store it). Only
    one modality is corrupted per sample, and a sample holding a single
    modality is never corrupted, so a sample never loses all of them.

    Modes (``mode``; a sequence of modes picks one uniformly per corrupted
    sample):

    * ``'zero'``: the raw values are set to 0 (black RGB; for depth the
      "no measurement" value). Note that this is 0 *before* normalisation;
      ``MultiModalSegDataPreProcessor(missing_modalities=...)`` instead
      zeroes *after* normalisation (= the dataset mean).
    * ``'noise'``: additive Gaussian noise with standard deviation
      ``noise_scale * (high - low)``, the result clipped to ``[low, high]``.
    * ``'replace'``: the modality is replaced by Gaussian noise of mean
      ``(low + high) / 2`` and the same standard deviation, clipped to
      ``[low, high]``.

    ``(low, high)`` is ``value_ranges[m]`` (default (0, 255) for ``rgb``
    and ``hha``); for a modality without a range (depth by default) the
    minimum and maximum of the sample's own map are used. The dtype is kept
    (integer images are rounded).

    Put the transform after the geometric and photometric transforms, right
    before ``PackMultiModalSegInputs``.

    Added keys: ``corrupted_modality`` (name or ``None``) and
    ``corruption_mode`` (mode or ``None``). Use
    :data:`CORRUPTION_META_KEYS` as the packing transform's ``meta_keys`` to
    keep them in the data samples' metainfo.

    Args:
        modalities (Sequence[str]): Modalities that may be corrupted.
        prob (float): Probability that a sample gets a corrupted modality.
        mode (str | Sequence[str]): ``'zero'``, ``'noise'`` or
            ``'replace'``, or several of them.
        noise_scale (float): Noise standard deviation as a fraction of the
            modality's value range. Defaults to 0.1.
        value_ranges (dict, optional): ``{modality: (low, high)}``
            overriding :data:`DEFAULT_VALUE_RANGES`.
        seed (int, optional): Seed of a private random generator, making
            the sequence of corruptions of this transform instance
            deterministic. With ``None`` numpy's global random state is used
            (seeded by the runner's ``randomness.seed`` and per dataloader
            worker).
    """

    def __init__(self,
                 modalities: Sequence[str] = ('rgb', 'depth'),
                 prob: float = 0.5,
                 mode='zero',
                 noise_scale: float = 0.1,
                 value_ranges: Optional[Dict[str, Tuple[float, float]]] = None,
                 seed: Optional[int] = None) -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        modes = (mode, ) if isinstance(mode, str) else tuple(mode)
        bad = [m for m in modes if m not in MODES]
        if not modes or bad:
            raise ValueError(f'mode must be one or several of {MODES}, '
                             f'got {mode!r}')
        if isinstance(modalities, str) or not modalities:
            raise ValueError('modalities must be a non-empty sequence of '
                             f'names, got {modalities!r}')
        if noise_scale < 0:
            raise ValueError(f'noise_scale must be >= 0, got {noise_scale}')
        self.modalities = tuple(modalities)
        self.prob = prob
        self.modes = modes
        self.noise_scale = noise_scale
        self.value_ranges = {**DEFAULT_VALUE_RANGES, **(value_ranges or {})}
        self.seed = seed
        self.rng = np.random.default_rng(seed) if seed is not None else None

    def _random(self) -> float:
        return (self.rng.random()
                if self.rng is not None else np.random.random())

    def _choice(self, options: Sequence):
        index = (
            self.rng.integers(len(options))
            if self.rng is not None else np.random.randint(len(options)))
        return options[int(index)]

    def _normal(self, loc: float, scale: float, shape) -> np.ndarray:
        if self.rng is not None:
            return self.rng.normal(loc, scale, shape)
        return np.random.normal(loc, scale, shape)

    def corrupt(self, name: str, array: np.ndarray, mode: str) -> np.ndarray:
        """Return the corrupted copy of one modality's array."""
        if mode == 'zero':
            return np.zeros_like(array)
        if name in self.value_ranges:
            low, high = (float(v) for v in self.value_ranges[name])
        else:
            low, high = float(array.min()), float(array.max())
        std = self.noise_scale * (high - low)
        if mode == 'noise':
            out = array.astype(np.float64) + self._normal(0., std, array.shape)
        else:  # replace
            out = self._normal((low + high) / 2, std, array.shape)
        out = np.clip(out, low, high)
        if np.issubdtype(array.dtype, np.integer):
            out = np.rint(out)
        return out.astype(array.dtype)

    def transform(self, results: dict) -> dict:
        results['corrupted_modality'] = None
        results['corruption_mode'] = None
        sample_modalities = tuple(results.get('modalities', ('rgb', )))
        candidates = [
            m for m in self.modalities if m in sample_modalities and (
                'img' if m == 'rgb' else m) in results
        ]
        # draw the probability first, always, so that the random stream does
        # not depend on the sample's content
        draw = self._random()
        if len(sample_modalities) < 2 or not candidates or draw >= self.prob:
            return results
        name = self._choice(candidates)
        mode = self._choice(self.modes)
        key = 'img' if name == 'rgb' else name
        results[key] = self.corrupt(name, results[key], mode)
        results['corrupted_modality'] = name
        results['corruption_mode'] = mode
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(modalities={self.modalities}, '
                f'prob={self.prob}, mode={self.modes}, '
                f'noise_scale={self.noise_scale}, seed={self.seed})')
