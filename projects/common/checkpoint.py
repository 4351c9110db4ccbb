"""Unwrapping the parameters of a sub-module out of a checkpoint file, and
loading a whole model from one exactly."""
from collections import defaultdict
from collections.abc import Mapping
from typing import Dict, Optional, Sequence

from torch import Tensor, nn

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


def describe_keys(keys: Sequence[str], limit: int = 10, shown: int = 3) -> str:
    """State-dict keys for an error message: all of them up to ``limit``,
    else ``a.b.* (N keys: a.b.c, ...)`` per two-level prefix (a checkpoint
    of another model differs in hundreds of keys)."""
    keys = sorted(keys)
    if len(keys) <= limit:
        return ', '.join(keys)
    groups = defaultdict(list)
    for key in keys:
        groups['.'.join(key.split('.')[:2])].append(key)
    return '; '.join(
        f'{prefix}.* ({len(names)} keys: {", ".join(names[:shown])}'
        f'{", ..." if len(names) > shown else ""})'
        for prefix, names in groups.items())


class CheckpointMismatchError(ValueError):
    """A checkpoint that does not hold exactly the tensors of a model."""


def load_state_dict_exactly(model: nn.Module,
                            checkpoint: Mapping,
                            source: str = 'checkpoint',
                            target: str = 'the model') -> None:
    """Load every tensor of ``model`` from ``checkpoint`` (a loaded file,
    unwrapped as :func:`unwrap_state_dict` does, every key kept), nothing
    more, nothing less. mmengine's loaders only warn on a mismatch; the
    inferencer and the ONNX export must not run a half-loaded model.

    Raises:
        CheckpointMismatchError: Keys the model has and the checkpoint
            lacks, keys the model does not have, or tensors of another
            shape; the message names ``source``, ``target`` and the keys
            (:func:`describe_keys`).
    """
    try:
        state = unwrap_state_dict(checkpoint, source, prefix='')
    except (TypeError, ValueError) as error:  # not a dict of tensors
        raise CheckpointMismatchError(str(error)) from error
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f'{key}: checkpoint {tuple(state[key].shape)}, model '
        f'{tuple(own[key].shape)}' for key in sorted(set(own) & set(state))
        if state[key].shape != own[key].shape
    ]
    problems = []
    for label, keys in (('missing from the checkpoint', missing),
                        ('not in the model', unexpected)):
        if keys:
            problems.append(f'{len(keys)} key(s) {label}: '
                            f'{describe_keys(keys)}')
    if shapes:
        more = f' ... ({len(shapes)} in all)' if len(shapes) > 10 else ''
        problems.append(f'{len(shapes)} key(s) of another shape: '
                        f'{", ".join(shapes[:10])}{more}')
    if problems:
        raise CheckpointMismatchError(
            f'checkpoint {source} does not fit {target}: ' +
            '; '.join(problems))
    model.load_state_dict(state, strict=True)
