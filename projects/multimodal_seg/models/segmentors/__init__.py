from .merge_consistency import (MergeConsistencyEncoderDecoder,
                                confident_pixel_consistency, confident_pixels)
from .multi_stream_encoder_decoder import MultiStreamEncoderDecoder

__all__ = [
    'MergeConsistencyEncoderDecoder', 'MultiStreamEncoderDecoder',
    'confident_pixel_consistency', 'confident_pixels'
]
