from .merge_consistency import (MergeConsistencyEncoderDecoder,
                                confident_pixel_consistency)
from .multi_stream_encoder_decoder import MultiStreamEncoderDecoder

__all__ = [
    'MergeConsistencyEncoderDecoder', 'MultiStreamEncoderDecoder',
    'confident_pixel_consistency'
]
