from .yolos_vit import YOLOSViT

__all__ = ['YOLOSViT']
