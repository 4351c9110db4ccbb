"""Unwrapping the parameters of a sub-module out of a checkpoint file."""
from collections.abc import Mapping
from typing import Dict, Optional

from torch import Tensor

# what training frameworks wrap a state dict in: mmengine, DeiT / YOLOS
WRAPPERS = ('state_dict', 'model')


def unwrap_state_dict(checkpoint: Mapping,
                      source: str = 'checkpoint',
                      prefix: Optional[str] = None) -> Dict[str, Tensor]:
    """The state dict of a sub-module (e.g. a backbone) in what
    ``torch.load`` returned.

    1. ``{'state_dict': state}`` (mmengine) or ``{'model': state}`` (DeiT,
       YOLOS) is unwrapped;
    2. the ``module.`` prefix of DataParallel / DDP files is dropped;
    3. only the keys under ``prefix`` are kept, without it. Without an
       explicit prefix, ``'backbone.'`` is used when some key carries it
       (a whole segmentor or detector), otherwise every key is kept.

    Args:
        checkpoint (Mapping): The loaded file.
        source (str): Name of the file, for error messages.
        prefix (str, optional): Keep only keys starting with it.

    Raises:
        TypeError: The file is not a dict of tensors (after unwrapping).
        ValueError: Nothing is left (e.g. no key under ``prefix``).
    """
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f'{source}: expected a dict checkpoint, got '
                        f'{type(checkpoint).__name__}')
    for wrapper in WRAPPERS:
        if isinstance(checkpoint.get(wrapper), Mapping):
            checkpoint = checkpoint[wrapper]
            break
    state = {}
    for key, value in checkpoint.items():
        if not isinstance(value, Tensor):
            raise TypeError(f'{source}: expected tensors in the state dict, '
                            f'key "{key}" holds {type(value).__name__} '
                            f'(after unwrapping {"/".join(WRAPPERS)})')
        state[key[len('module.'):] if key.startswith('module.') else key] = (
            value)
    if prefix is None and any(key.startswith('backbone.') for key in state):
        prefix = 'backbone.'
    if prefix:
        state = {
            key[len(prefix):]: value
            for key, value in state.items() if key.startswith(prefix)
        }
    if not state:
        raise ValueError(f'{source}: no parameters found' +
                         (f' under prefix "{prefix}"' if prefix else ''))
    return state
