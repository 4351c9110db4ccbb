"""FLOPs that count the merged token counts: DeiT-T / MCTF / MCTF-Fast at
224 x 224 against the paper's GFLOPs (and the reference's fvcore counts,
which agree to 4 digits), and the attention rule on its own."""
import pytest
import torch

import projects.mctf  # noqa: F401
from projects.mctf.complexity import count_gflops, flop_analyzer
from tools.analysis_tools.benchmark_mctf import build

# (backbone settings, GFLOPs of the paper, of the reference's fvcore count)
DEIT_TINY = {
    'deit': (dict(r=0), 1.26, 1.2584),
    'mctf': (dict(r=16), 0.71, 0.7092),
    'mctf-fast': (dict(r=0.35, merge_layers=[3, 6, 9]), 0.75, 0.7481),
    'mode0': (dict(r=16, placement='after_block'), None, 0.7806),
    'mode2': (dict(r=16, placement='precise'), None, 0.8181),
}


@pytest.mark.parametrize('name', list(DEIT_TINY))
def test_deit_tiny_gflops(name):
    backbone, paper, reference = DEIT_TINY[name]
    gflops = count_gflops(build('deit-tiny', **backbone))
    assert gflops == pytest.approx(reference, abs=1e-4)
    if paper is not None:
        assert gflops == pytest.approx(paper, rel=0.03)


def test_attention_rule():
    """q k^T and the weighted sum of the values, one FLOP per
    multiply-add: B H N M (d + d_v)."""

    class Attention(torch.nn.Module):

        def forward(self, x, mode):
            q, k, v = x[..., :5, :8], x[..., :7, 8:16], x[..., :7, 16:20]
            return torch.nn.functional.scaled_dot_product_attention(q, k, v)

    analyzer = flop_analyzer(Attention(), torch.randn(2, 3, 7, 20))
    assert analyzer.total() == 2 * 3 * 5 * 7 * (8 + 4)
