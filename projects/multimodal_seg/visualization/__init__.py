from .multimodal_visualizer import (MultiModalSegLocalVisualizer,
                                    colourize_depth)
from .token_exchange_maps import token_exchange, visualize_sample

__all__ = [
    'MultiModalSegLocalVisualizer', 'colourize_depth', 'token_exchange',
    'visualize_sample'
]
