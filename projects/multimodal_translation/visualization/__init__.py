from .token_exchange_maps import (frame_name, source_images, to_uint8,
                                  translation_exchange_figure)

__all__ = [
    'frame_name', 'source_images', 'to_uint8', 'translation_exchange_figure'
]
