from .formatting import PackMultiModalSegInputs
from .loading import (LoadDepthFromFile, LoadModalityImageFromFile,
                      LoadValidatedAnnotations, read_depth)
from .processing import MultiModalPad

__all__ = [
    'LoadDepthFromFile', 'LoadModalityImageFromFile',
    'LoadValidatedAnnotations', 'MultiModalPad', 'PackMultiModalSegInputs',
    'read_depth'
]
