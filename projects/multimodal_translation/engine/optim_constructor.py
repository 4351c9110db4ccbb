"""One optimizer per sub-network, for models trained by alternating steps
(a GAN's generator and discriminator)."""
from typing import Optional

import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapperDict
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class PerSubmoduleOptimWrapperConstructor:
    """Build an ``OptimWrapperDict`` with one optimizer wrapper per named
    submodule of the model, each by mmengine's default constructor (so each
    may have its own ``paramwise_cfg``)::

        optim_wrapper = dict(
            constructor='PerSubmoduleOptimWrapperConstructor',
            generator=dict(optimizer=dict(type='Adam', lr=2e-4)),
            discriminator=dict(optimizer=dict(type='Adam', lr=2e-4)))

    ``model.train_step`` receives the dict and steps each wrapper itself.

    Args:
        optim_wrapper_cfg (dict): Submodule name -> optimizer wrapper
            config.
        paramwise_cfg (dict, optional): Not used at this level; give it per
            submodule.
    """

    def __init__(self,
                 optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None) -> None:
        if paramwise_cfg:
            raise ValueError('give paramwise_cfg per submodule, e.g. '
                             'optim_wrapper.generator.paramwise_cfg')
        if not optim_wrapper_cfg:
            raise ValueError('optim_wrapper names no submodule')
        for name, cfg in optim_wrapper_cfg.items():
            if not isinstance(cfg, dict) or 'optimizer' not in cfg:
                raise ValueError(f'optim_wrapper.{name} must be an optimizer '
                                 f'wrapper config with an optimizer, got '
                                 f'{cfg!r}')
        self.optim_wrapper_cfg = optim_wrapper_cfg

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        model = getattr(model, 'module', model)  # (distributed) wrappers
        wrappers = {}
        for name, cfg in self.optim_wrapper_cfg.items():
            submodule = getattr(model, name, None)
            if not isinstance(submodule, nn.Module):
                raise AttributeError(
                    f'optim_wrapper.{name}: {type(model).__name__} has no '
                    f'submodule {name!r}')
            cfg = dict(cfg)
            paramwise = cfg.pop('paramwise_cfg', None)
            wrappers[name] = DefaultOptimWrapperConstructor(cfg, paramwise)(
                submodule)
        return OptimWrapperDict(**wrappers)
