from .seed_fusion import SeedKeyFusion

__all__ = ['SeedKeyFusion']
