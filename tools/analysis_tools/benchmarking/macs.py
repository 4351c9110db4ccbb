"""Multiply-accumulates and parameters, in total and inside the fusion
modules.

MACs are counted with the formulas of ``torch.utils.flop_counter`` in a
dispatch mode (:class:`MacCounter`): at dispatcher level, so the same ops
are counted however a model is written: ``mm`` / ``addmm`` (linear),
``bmm`` / ``baddbmm`` (per-modality linears, explicit attention products),
convolutions (grouped / depthwise with their group count) and
``scaled_dot_product_attention``, whose CPU kernel
``_scaled_dot_product_flash_attention_for_cpu`` is registered here since
torch does not count it. Norms, activations, softmax, element-wise ops and
bilinear resizes are not counted (the fvcore / mmengine convention). A
segmentor is counted on ``model(inputs)``, mmseg's ``'tensor'`` mode: the
backbone and the head's logits, nothing of the ensemble or the
post-processing, which have no matmuls.
"""
import re
from typing import Dict, Tuple

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

from projects.multimodal_seg.models import FusedMiT
from tools.analysis_tools.reference_formulation import ReferenceTokenFusionMiT

# fusion modules: the fusion layers (``fusion_layers``) and the modality hub
# (``hub``) of FusedMiT, the score predictors of the reference formulation
# (``score_predictor``)
FUSION_NAME = re.compile(r'(^|\.)(fusion_layers|hub|score_predictor)(\.|$)')


def _sdpa_flops(query, key, value, *args, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count
    return sdpa_flop_count(query.shape, key.shape, value.shape)


class MacCounter(TorchDispatchMode):
    """Counts the FLOPs of the dispatched aten ops with the formulas of
    ``torch.utils.flop_counter`` (mm, addmm, bmm, baddbmm, convolution with
    groups, SDPA on CUDA) plus the CPU kernels of SDPA that torch does not
    count. A plain dispatch mode: no module tracking, no dynamo import."""

    def __init__(self) -> None:
        super().__init__()
        from torch.utils.flop_counter import flop_registry
        self.registry = dict(flop_registry)
        aten = torch.ops.aten
        for op in ('_scaled_dot_product_flash_attention_for_cpu',
                   '_scaled_dot_product_fused_attention_overrideable'):
            if hasattr(aten, op):
                self.registry[getattr(aten, op)] = _sdpa_flops
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = self.registry.get(func._overloadpacket)
        if formula is not None:
            self.flops += formula(*args, **kwargs, out_val=out)
        return out


def is_fusion_name(name: str) -> bool:
    """Whether a module / parameter name belongs to a fusion module."""
    return FUSION_NAME.search(name) is not None


def count_macs_split(model: nn.Module,
                     inputs: torch.Tensor) -> Tuple[int, int]:
    """MACs of ``model(inputs)``, total and inside fusion modules.

    The fusion share is what the counter sees between entering and leaving
    the outermost called module whose name :func:`is_fusion_name` (forward
    hooks with a nesting depth, so nested or uncalled containers are
    counted once or not at all: a fusion layer's score predictors or
    GeminiFusion modules are called, the layer itself is not). The token
    exchange itself (``where``) and GeminiFusion's element-wise two-key dot
    products are no matmuls and are not counted (see
    ``tests/multimodal_seg/test_geminifusion.py``).

    Returns:
        tuple[int, int]: ``(total, fusion)`` multiply-accumulates.
    """
    counter = MacCounter()
    state = dict(depth=0, start=0, fusion=0)

    def enter(module, args):
        if state['depth'] == 0:
            state['start'] = counter.flops
        state['depth'] += 1

    def leave(module, args, output):
        state['depth'] -= 1
        if state['depth'] == 0:
            state['fusion'] += counter.flops - state['start']

    handles = []
    for name, module in model.named_modules():
        if is_fusion_name(name):
            handles += [
                module.register_forward_pre_hook(enter),
                module.register_forward_hook(leave)
            ]
    try:
        with torch.no_grad(), counter:
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return counter.flops // 2, state['fusion'] // 2


def count_macs(model: nn.Module, inputs: torch.Tensor) -> int:
    """Multiply-accumulates of ``model(inputs)`` (see the module doc)."""
    return count_macs_split(model, inputs)[0]


def count_params(model: nn.Module, fusion_only: bool = False) -> int:
    """Parameters of ``model`` (``fusion_only``: of its fusion modules)."""
    return sum(p.numel() for name, p in model.named_parameters()
               if not fusion_only or is_fusion_name(name))


def check_flops(num_modalities: int = 2) -> Dict[str, int]:
    """MACs of a tiny ``FusedMiT`` with a ``TokenExchange`` layer (``ours``)
    and of its reference formulation (``reference``): they compute the
    same function, so the counts must be equal."""
    torch.manual_seed(0)
    ours = FusedMiT(
        num_modalities=num_modalities,
        embed_dims=8,
        num_layers=(2, 1, 1, 1),
        fusion=dict(type='TokenExchange')).eval()
    ref = ReferenceTokenFusionMiT.from_fused(ours).eval()
    x = torch.randn(1, 3 * num_modalities, 64, 64)
    return dict(ours=count_macs(ours, x), reference=count_macs(ref, x))
