from .consistency_classifier import (TokenReductionConsistencyClassifier,
                                     consistency_loss, true_class_probability)

__all__ = [
    'TokenReductionConsistencyClassifier', 'consistency_loss',
    'true_class_probability'
]
