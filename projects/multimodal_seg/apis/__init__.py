from .multimodal_seg_inferencer import MultiModalSegInferencer

__all__ = ['MultiModalSegInferencer']
