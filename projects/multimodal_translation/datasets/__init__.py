from .data_sample import TranslationDataSample
from .synthetic_translation import (SYNTHETIC_DOMAINS,
                                    SyntheticTranslationDataset,
                                    generate_synthetic_translation,
                                    render_translation_sample)
from .taskonomy import (LAYOUTS, TaskonomyDataset, frame_template,
                        list_taskonomy_frames)
from .transforms import *  # noqa: F401,F403

__all__ = [
    'LAYOUTS', 'SYNTHETIC_DOMAINS', 'SyntheticTranslationDataset',
    'TaskonomyDataset', 'TranslationDataSample', 'frame_template',
    'generate_synthetic_translation', 'list_taskonomy_frames',
    'render_translation_sample'
]
