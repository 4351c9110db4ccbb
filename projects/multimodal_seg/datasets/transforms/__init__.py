from .formatting import PackMultiModalSegInputs
from .inferencer_loading import LoadMultiModalInferencerInputs
from .loading import (LoadDepthFromFile, LoadModalityImageFromFile,
                      LoadValidatedAnnotations, read_depth)
from .modality_corruption import CORRUPTION_META_KEYS, RandomModalityCorruption
from .processing import MultiModalPad, PhotoMetricDistortionNoHue

__all__ = [
    'CORRUPTION_META_KEYS', 'RandomModalityCorruption', 'LoadDepthFromFile',
    'LoadModalityImageFromFile', 'LoadMultiModalInferencerInputs',
    'LoadValidatedAnnotations', 'MultiModalPad', 'PackMultiModalSegInputs',
    'PhotoMetricDistortionNoHue', 'read_depth'
]
