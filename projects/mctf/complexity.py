"""FLOPs of merging ViTs that count what merging saves.

mmengine's ``FlopAnalyzer`` (a port of fvcore's) traces the model on one
input, so every layer is counted at the token count it really sees. It
counts one FLOP per multiply-add of convolutions, linear layers and
matrix products, plus the norms, as fvcore does; it has no rule for
PyTorch's fused ``scaled_dot_product_attention``, which mmpretrain's
attention calls, so it would count the attention of the unmerged layers
as free. :func:`sdpa_flop_jit` counts it as the two matrix products it
is (q k^T and the weighted sum of the values), as fvcore counts the
reference's explicit attention. Matching (a matrix product of the
normalised tokens) and the merging of the attention map (matrix products
over the groups) are ordinary traced operations and are counted as such.
"""
from typing import Any, List

import torch
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """FLOPs (multiply-adds) of ``scaled_dot_product_attention(q, k, v)``:
    B H N M d for q k^T plus B H N M d_v for the values."""
    q, k, v = (get_shape(x) for x in inputs[:3])
    *batch, n, d = q
    m, d_v = k[-2], v[-1]
    count = n * m * (d + d_v)
    for dim in batch:
        count *= dim
    return count


class _Logits(torch.nn.Module):
    """The classifier's logits as a plain module call (what tracing
    needs)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(inputs, mode='tensor')


def flop_analyzer(model: torch.nn.Module,
                  inputs: torch.Tensor) -> FlopAnalyzer:
    """A ``FlopAnalyzer`` of an mmpretrain classifier (its ``'tensor'``
    mode) on ``inputs`` (B, 3, H, W), with the attention rule above and
    without warnings for the uncounted element-wise operations."""
    model.eval()
    analyzer = FlopAnalyzer(_Logits(model), (inputs, ))
    analyzer.set_op_handle('aten::scaled_dot_product_attention', sdpa_flop_jit)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return analyzer


def count_gflops(model: torch.nn.Module, img_size: int = 224) -> float:
    """GFLOPs of one ``img_size`` x ``img_size`` image through an mmpretrain
    classifier, with :func:`flop_analyzer`."""
    with torch.no_grad():
        return flop_analyzer(model, torch.randn(1, 3, img_size,
                                                img_size)).total() / 1e9
