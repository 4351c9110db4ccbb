"""Image-quality evaluation of the translation task: pure NumPy / SciPy
measures (:mod:`.functional`: FID, KID, MAE, MSE, PSNR, SSIM), the FID
feature network and extractor, the reference's matplotlib rendering, and
the evaluators registered in mmseg's ``METRICS``."""
from .feature_extractor import FIDFeatureExtractor
from .fid_inception import FID_WEIGHTS_NAME, FIDInceptionV3
from .functional import (frechet_distance, kernel_inception_distance,
                         mean_absolute_error, mean_squared_error,
                         peak_signal_noise_ratio, ssim)
from .matplotlib_protocol import matplotlib_render
from .metrics import (GT_KEY, PRED_KEY, TRANSLATION_METRICS, FIDKIDMetric,
                      TranslationMetric)

__all__ = [
    'FIDFeatureExtractor', 'FID_WEIGHTS_NAME', 'FIDInceptionV3',
    'frechet_distance', 'kernel_inception_distance', 'mean_absolute_error',
    'mean_squared_error', 'peak_signal_noise_ratio', 'ssim',
    'matplotlib_render', 'FIDKIDMetric', 'GT_KEY', 'PRED_KEY',
    'TRANSLATION_METRICS', 'TranslationMetric'
]
