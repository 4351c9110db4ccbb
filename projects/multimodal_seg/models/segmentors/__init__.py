from .multi_stream_encoder_decoder import MultiStreamEncoderDecoder

__all__ = ['MultiStreamEncoderDecoder']
