from .synthetic_shapes import (SHAPE_CLASSES, SyntheticShapesDataset,
                               generate_synthetic_shapes, render_sample)

__all__ = [
    'SHAPE_CLASSES', 'SyntheticShapesDataset', 'generate_synthetic_shapes',
    'render_sample'
]
