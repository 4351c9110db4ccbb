from .optim_constructor import PerSubmoduleOptimWrapperConstructor

__all__ = ['PerSubmoduleOptimWrapperConstructor']
