from .segformer_mlp_head import SegFormerMLPHead

__all__ = ['SegFormerMLPHead']
