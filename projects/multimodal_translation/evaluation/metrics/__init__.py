"""The translation evaluators (mmseg ``METRICS``) and the data-sample
contract they share (:mod:`.samples`)."""
from .fid_kid_metric import FIDKIDMetric
from .samples import GT_KEY, PRED_KEY
from .translation_metric import TRANSLATION_METRICS, TranslationMetric

__all__ = [
    'FIDKIDMetric', 'GT_KEY', 'PRED_KEY', 'TRANSLATION_METRICS',
    'TranslationMetric'
]
