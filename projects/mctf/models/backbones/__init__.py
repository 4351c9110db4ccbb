from .mctf_vit import PLACEMENTS, MCTFVisionTransformer, MergeTrace

__all__ = ['MCTFVisionTransformer', 'MergeTrace', 'PLACEMENTS']
