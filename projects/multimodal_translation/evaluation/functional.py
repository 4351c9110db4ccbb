"""Image-quality measures of the translation task as pure NumPy / SciPy
functions (no registry, no torch).

Feature-set distances (FID, KID) take two (N, D) arrays of image features,
one row per image (Inception-v3 pool features for the usual FID / KID; see
:mod:`.feature_extractor`). The first set is the generated ("fake") one,
the second the real one; FID is symmetric, KID's subset draws follow that
order.

Per-image measures (MAE, MSE, PSNR, SSIM) take a prediction and a target
of the same shape in [-1, 1], the range of the task's tanh outputs and of
its normalised targets (``(x / 255 - 0.5) / 0.5``):

* MAE and MSE are the plain means over every element (channels and
  pixels) of ``|p - t|`` and ``(p - t) ** 2`` on the [-1, 1] values, as
  ``torch.nn.L1Loss`` / ``MSELoss`` in the reference evaluation.
* PSNR uses the peak-to-peak range 2 of [-1, 1] images,
  ``10 log10(2 ** 2 / MSE)``, which equals the usual PSNR of the images
  mapped to [0, 1] (or to [0, 255] with peak 255). Identical images give
  ``inf``.
* SSIM is computed on the images mapped to [0, 1], see :func:`ssim`.

The aggregation over a data set (mean of per-image values, RMSE as the
root of the mean MSE) is the evaluators' business
(:mod:`.metrics.translation_metric`).
"""
import warnings
from typing import Optional, Union

import numpy as np
from scipy import linalg

# added to both covariance diagonals when sqrtm of their product is not
# finite (the reference's retry)
SQRTM_EPS = 1e-6
# largest imaginary part tolerated on the diagonal of sqrtm's result
SQRTM_IMAG_ATOL = 1e-3

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

RandomSource = Union[np.random.Generator, np.random.RandomState]


def _feature_sets(feats_a, feats_b, min_rows: int):
    """Both sets as float64 (N, D) arrays with the same D and at least
    ``min_rows`` rows each."""
    sets = []
    for name, feats in (('feats_a', feats_a), ('feats_b', feats_b)):
        feats = np.asarray(feats, dtype=np.float64)
        if feats.ndim != 2:
            raise ValueError(f'{name} must be an (N, D) array of features, '
                             f'got shape {feats.shape}')
        if feats.shape[0] < min_rows:
            raise ValueError(f'{name} has {feats.shape[0]} feature rows; '
                             f'at least {min_rows} are needed')
        if not np.isfinite(feats).all():
            raise ValueError(f'{name} holds non-finite features')
        sets.append(feats)
    if sets[0].shape[1] != sets[1].shape[1]:
        raise ValueError(f'Feature sizes differ: feats_a has D='
                         f'{sets[0].shape[1]}, feats_b D={sets[1].shape[1]}')
    return sets


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    """scipy's matrix square root, without its warning for the singular
    products that fewer images than feature dimensions always give."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', linalg.LinAlgWarning)
        return linalg.sqrtm(matrix)


def frechet_distance(feats_a, feats_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (FID
    when the features are Inception-v3 pool features)::

        FID = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr(sqrtm(S_a S_b))

    with the means ``mu`` and the sample covariances ``S`` (``np.cov``,
    ddof 1) of the rows. As in the reference evaluation: when
    ``scipy.linalg.sqrtm`` of the product is not finite it is recomputed
    with 1e-6 added to both diagonals, ``(S_a + eps I)(S_b + eps I)``; a
    complex result whose diagonal has an imaginary part above 1e-3 is an
    error, otherwise its real part is used.

    Args:
        feats_a (array-like): (N_a, D) features, N_a >= 2.
        feats_b (array-like): (N_b, D) features, N_b >= 2.

    Returns:
        float: The distance (unscaled; FID is usually printed as is).
    """
    feats_a, feats_b = _feature_sets(feats_a, feats_b, min_rows=2)
    mu_a, mu_b = feats_a.mean(axis=0), feats_b.mean(axis=0)
    sigma_a = np.atleast_2d(np.cov(feats_a, rowvar=False))
    sigma_b = np.atleast_2d(np.cov(feats_b, rowvar=False))

    covmean = _sqrtm(sigma_a @ sigma_b)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma_a.shape[0]) * SQRTM_EPS
        covmean = _sqrtm((sigma_a + offset) @ (sigma_b + offset))
        if not np.isfinite(covmean).all():
            raise ValueError('sqrtm of the covariance product is not finite, '
                             f'even with {SQRTM_EPS} added to the diagonals')
    if np.iscomplexobj(covmean):
        imag = np.abs(np.diagonal(covmean).imag).max()
        if imag > SQRTM_IMAG_ATOL:
            raise ValueError(
                'sqrtm of the covariance product has an imaginary '
                f'component of {imag:.3g} on its diagonal (tolerance '
                f'{SQRTM_IMAG_ATOL}); the feature sets are probably '
                'degenerate')
        covmean = covmean.real
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) -
                 2 * np.trace(covmean))


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """KID's kernel ``k(x, y) = (x . y / D + 1) ** 3`` between the rows of
    (N, D) ``x`` and (M, D) ``y``; (N, M)."""
    return (x @ y.T / x.shape[1] + 1)**3


def unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased estimate of the squared MMD between two (m, D) samples of
    equal size m >= 2 under :func:`polynomial_kernel`: the off-diagonal
    means of k(x, x) and k(y, y) minus twice the full mean of k(x, y)."""
    m = x.shape[0]
    k_xx, k_yy, k_xy = (polynomial_kernel(x, x), polynomial_kernel(y, y),
                        polynomial_kernel(x, y))
    off_diagonal = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy))
    return float(off_diagonal / (m * (m - 1)) - 2 * k_xy.sum() / (m * m))


def kernel_inception_distance(feats_a,
                              feats_b,
                              num_subsets: int = 50,
                              subset_size: int = 1000,
                              rng: Optional[RandomSource] = None) -> float:
    """Kernel distance between two feature sets (KID with Inception-v3
    features): the mean over ``num_subsets`` subsets of
    :func:`unbiased_mmd2` under the cubic polynomial kernel.

    Each subset has ``m = min(subset_size, N_a, N_b)`` rows of each set,
    drawn without replacement, ``feats_a`` first then ``feats_b``:
    ``rng.choice(N_a, m, replace=False)`` then
    ``rng.choice(N_b, m, replace=False)``, subset after subset. The
    reference draws in that order (fake set first) from NumPy's global
    RNG; here the source is explicit: ``rng=None`` uses
    ``np.random.default_rng(0)``, so the result is reproducible. Pass a
    ``np.random.RandomState`` (e.g. seeded as the reference's global
    state) to repeat the reference's legacy draws. When both sets have the
    same size N <= ``subset_size`` (the reference's evaluation: 500 real
    and 500 generated images) every subset is a permutation of the full
    sets and the result does not depend on the draws.

    Args:
        feats_a (array-like): (N_a, D) features of the generated images.
        feats_b (array-like): (N_b, D) features of the real images.
        num_subsets (int): Number of subsets. Defaults to 50.
        subset_size (int): Largest subset size. Defaults to 1000.
        rng (np.random.Generator | np.random.RandomState, optional): Source
            of the draws. Defaults to ``np.random.default_rng(0)``.

    Returns:
        float: The KID, unscaled (papers, and the evaluator, print it
        x100). An unbiased estimate: it can be slightly negative.
    """
    feats_a, feats_b = _feature_sets(feats_a, feats_b, min_rows=2)
    if num_subsets < 1:
        raise ValueError(f'num_subsets must be >= 1, got {num_subsets}')
    m = min(subset_size, feats_a.shape[0], feats_b.shape[0])
    if m < 2:
        raise ValueError(f'KID needs subsets of at least 2 rows, got '
                         f'subset_size={subset_size}')
    if rng is None:
        rng = np.random.default_rng(0)
    values = []
    for _ in range(num_subsets):
        rows_a = rng.choice(feats_a.shape[0], m, replace=False)
        rows_b = rng.choice(feats_b.shape[0], m, replace=False)
        values.append(unbiased_mmd2(feats_a[rows_a], feats_b[rows_b]))
    return float(np.mean(values))


def _image_pair(pred, target):
    """Both images as float64 arrays of the same shape."""
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if pred.shape != target.shape:
        raise ValueError(f'Prediction and target shapes differ: {pred.shape} '
                         f'vs {target.shape}')
    if pred.size == 0:
        raise ValueError('Empty images')
    return pred, target


def mean_absolute_error(pred, target) -> float:
    """Mean of ``|pred - target|`` over all elements (L1 on [-1, 1])."""
    pred, target = _image_pair(pred, target)
    return float(np.abs(pred - target).mean())


def mean_squared_error(pred, target) -> float:
    """Mean of ``(pred - target) ** 2`` over all elements (on [-1, 1])."""
    pred, target = _image_pair(pred, target)
    return float(np.square(pred - target).mean())


def peak_signal_noise_ratio(pred, target) -> float:
    """PSNR in dB of images in [-1, 1]: ``10 log10(4 / MSE)`` (peak-to-peak
    2); ``inf`` for identical images."""
    mse = mean_squared_error(pred, target)
    if mse == 0:
        return float('inf')
    return float(10 * np.log10(4.0 / mse))


def gaussian_window(size: int = SSIM_WINDOW,
                    sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian of ``size`` taps centred on the middle one;
    its outer product with itself is SSIM's 2-D window."""
    taps = np.arange(size, dtype=np.float64) - (size - 1) / 2
    window = np.exp(-taps**2 / (2 * sigma**2))
    return window / window.sum()


def _filter_valid(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of (..., H, W) with the 2-D window
    ``outer(window, window)``: (..., H - k + 1, W - k + 1)."""
    # sliding_window_view puts the window's taps on a new last axis
    view = np.lib.stride_tricks.sliding_window_view
    rows = view(image, window.size, axis=-1) @ window
    return view(rows, window.size, axis=-2) @ window


def ssim(pred, target) -> float:
    """Mean structural similarity (Wang et al., 2004) of images in [-1, 1].

    The images are mapped to [0, 1] (dynamic range L = 1); local
    statistics are Gaussian-weighted over 11x11 windows (sigma 1.5) at
    every position where the window fits ('valid', no padding), with
    population (not sample) variances::

        SSIM = (2 mu_p mu_t + C1)(2 s_pt + C2)
               / ((mu_p^2 + mu_t^2 + C1)(s_p^2 + s_t^2 + C2))

    C1 = (0.01 L)^2, C2 = (0.03 L)^2. The map is averaged over positions
    and channels.

    Args:
        pred (array-like): (H, W) or (C, H, W) image in [-1, 1], H and W
            >= 11.
        target (array-like): Same shape.

    Returns:
        float: Mean SSIM, 1 for identical images.
    """
    pred, target = _image_pair(pred, target)
    if pred.ndim not in (2, 3):
        raise ValueError(f'SSIM takes (H, W) or (C, H, W) images, got shape '
                         f'{pred.shape}')
    if min(pred.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f'SSIM needs images of at least {SSIM_WINDOW}x'
                         f'{SSIM_WINDOW} pixels, got {pred.shape[-2:]}')
    p, t = (pred + 1) / 2, (target + 1) / 2
    window = gaussian_window()
    mu_p, mu_t = _filter_valid(p, window), _filter_valid(t, window)
    var_p = _filter_valid(p * p, window) - mu_p**2
    var_t = _filter_valid(t * t, window) - mu_t**2
    cov = _filter_valid(p * t, window) - mu_p * mu_t
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    ssim_map = ((2 * mu_p * mu_t + c1) * (2 * cov + c2) /
                ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2)))
    return float(ssim_map.mean())
