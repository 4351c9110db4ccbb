from .staged_poly_lr import StagedPolyLR, staged_poly_factor

__all__ = ['StagedPolyLR', 'staged_poly_factor']
