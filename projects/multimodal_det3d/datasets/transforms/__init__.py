from .multiview_loading import LoadMultiViewPosedImages

__all__ = ['LoadMultiViewPosedImages']
