from .multimodal_visualizer import (MultiModalSegLocalVisualizer,
                                    colourize_depth)

__all__ = ['MultiModalSegLocalVisualizer', 'colourize_depth']
