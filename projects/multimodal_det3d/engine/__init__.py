from .tokenfusion3d_hook import TokenFusion3DHook

__all__ = ['TokenFusion3DHook']
