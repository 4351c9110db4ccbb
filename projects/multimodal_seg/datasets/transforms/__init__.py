from .formatting import PackMultiModalSegInputs
from .loading import (LoadDepthFromFile, LoadModalityImageFromFile,
                      LoadValidatedAnnotations, read_depth)
from .modality_corruption import CORRUPTION_META_KEYS, RandomModalityCorruption
from .processing import MultiModalPad

__all__ = [
    'CORRUPTION_META_KEYS', 'RandomModalityCorruption', 'LoadDepthFromFile',
    'LoadModalityImageFromFile', 'LoadValidatedAnnotations', 'MultiModalPad',
    'PackMultiModalSegInputs', 'read_depth'
]
