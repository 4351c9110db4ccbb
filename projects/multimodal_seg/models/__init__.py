from .data_preprocessor import MODALITY_DEFAULTS, MultiModalSegDataPreProcessor

__all__ = ['MODALITY_DEFAULTS', 'MultiModalSegDataPreProcessor']
