from .formatting import TRANSLATION_META_KEYS, PackTranslationInputs
from .loading import (DOMAIN_FORMATS, DomainFormat, LoadTranslationDomains,
                      read_domain, scale_domain)
from .processing import (TranslationRandomCrop, TranslationRandomFlip,
                         TranslationResize, resize_chw)

__all__ = [
    'DOMAIN_FORMATS', 'DomainFormat', 'LoadTranslationDomains',
    'PackTranslationInputs', 'TRANSLATION_META_KEYS', 'TranslationRandomCrop',
    'TranslationRandomFlip', 'TranslationResize', 'read_domain', 'resize_chw',
    'scale_domain'
]
