"""TokenFusion's fusion equations on hand-made tensors: scores, the
substitution rule, exchange, group allocation, sparsity, statistics."""
import math

import pytest
import torch

# yapf: disable
from projects.fusion_math.token_exchange import (ScorePredictor,
                                                 allocation_for_grid,
                                                 exchange_tokens,
                                                 fuse_attention_output,
                                                 fusion_statistics,
                                                 make_group_allocation,
                                                 scores_from_logits,
                                                 source_tokens, sparsity_loss,
                                                 substitute_below_threshold)

# yapf: enable


def test_scores_are_softmax_channel_zero():
    logits = torch.tensor([[0., 0.], [2., -1.], [-30., 30.]])
    expected = torch.tensor([0.5, 1 / (1 + math.exp(-3)), 0.])
    torch.testing.assert_close(scores_from_logits(logits), expected)


def test_exchange_two_modalities_by_own_score():
    # x[m, b, n, c]: modality m, token n holds 10*m + n
    x = torch.tensor([[0., 1., 2., 3.], [10., 11., 12., 13.]]).view(2, 1, 4, 1)
    scores = torch.tensor([[0.5, 0.01, 0.02, 0.019], [0.001, 0.9, 0.5,
                                                      0.0]]).view(2, 1, 4)
    out = exchange_tokens(x, scores, threshold=0.02).view(2, 4)
    assert out.tolist() == [[0., 11., 2., 13.], [0., 11., 12., 3.]]


def test_fuse_attention_output_weights_then_exchanges():
    a = torch.tensor([[2., 4.], [6., 8.]]).view(2, 1, 2, 1)
    s = torch.tensor([[0.5, 0.01], [0.25, 0.5]]).view(2, 1, 2)
    out = fuse_attention_output(a, s, threshold=0.02).view(2, 2)
    # rgb token 1 (0.01 < θ) takes depth's weighted output 8 * 0.5 = 4
    assert out.tolist() == [[1.0, 4.0], [1.5, 4.0]]
    # the predictor gets gradients through the weighting: depth's token 1
    # is used twice (kept by depth, taken by rgb), rgb's token 1 not at all
    s = s.clone().requires_grad_()
    fuse_attention_output(a, s, 0.02).sum().backward()
    assert s.grad.view(2, 2).tolist() == [[2., 0.], [6., 16.]]


@pytest.mark.parametrize('m', [3, 4])
def test_group_allocation(m):
    p = 8
    gen = torch.Generator().manual_seed(0)
    allocation = make_group_allocation(m, p, gen)
    assert allocation.shape == (m, p, p)
    again = make_group_allocation(m, p, torch.Generator().manual_seed(0))
    assert torch.equal(allocation, again)
    for target in range(m):
        sources = allocation[target].flatten()
        assert (sources != target).all()
        counts = torch.bincount(sources, minlength=m)
        others = [c for s, c in enumerate(counts.tolist()) if s != target]
        assert max(others) - min(others) <= 1 and sum(others) == p * p
    # random split: different modalities use different position groups
    assert not torch.equal(allocation[0] == 1, allocation[2] == 1)
    grid = allocation_for_grid(allocation, 10, 13)
    assert grid.shape == (m, 130)
    assert grid.view(m, 10, 13)[:, 9, 12].tolist() == \
        allocation[:, 9 % p, 12 % p].tolist()


def test_exchange_with_allocation():
    m, n = 3, 5
    x = torch.arange(m * n, dtype=torch.float).view(m, 1, n, 1)
    allocation = torch.tensor([[1, 2, 1, 2, 1], [0, 2, 2, 0, 0],
                               [1, 0, 0, 1, 1]])
    src = source_tokens(x, allocation).view(m, n)
    for target in range(m):
        for pos in range(n):
            assert src[target, pos] == x[allocation[target, pos], 0, pos, 0]
    scores = torch.full((m, 1, n), 0.5)
    scores[1, 0, 2] = 0.
    out = exchange_tokens(x, scores, 0.02, allocation).view(m, n)
    assert out[1, 2] == x[2, 0, 2, 0] and out[0, 2] == x[0, 0, 2, 0]
    with pytest.raises(ValueError, match='need a group allocation'):
        source_tokens(x)


def test_sparsity_loss_reductions():
    scores = [torch.ones(2, 3, 4), torch.full((2, 3, 2), 0.5)]
    assert sparsity_loss(scores, 'sum').item() == 24 + 6
    assert sparsity_loss(scores, 'mean').item() == pytest.approx(30 / 36)
    with pytest.raises(ValueError):
        sparsity_loss(scores, 'max')


def test_fusion_statistics():
    scores = [
        torch.tensor([[[0.01, 0.5]], [[0.9, 0.9]]]),
        torch.tensor([[[0.001, 0.001]], [[0.9, 0.01]]]),
        torch.tensor([[[0.3]], [[0.3]]])
    ]
    stats = fusion_statistics(scores, ['block1.0', 'block1.1', 'block2.0'],
                              0.02, ['rgb', 'depth'])
    assert stats['stage1/rgb/exchanged'].item() == 0.75
    assert stats['stage1/depth/exchanged'].item() == 0.25
    assert stats['stage2/depth/exchanged'].item() == 0
    assert stats['stage1/rgb/score_max'].item() == 0.5
    assert stats['stage1/depth/score_min'].item() == pytest.approx(0.01)


def test_substitute_below_threshold_is_the_one_rule():
    x = torch.tensor([[1.], [2.], [3.], [4.]])
    replacement = torch.tensor([[-1.], [-2.], [-3.], [-4.]])
    scores = torch.tensor([0.5, 0.01, 0.02, 0.001])
    out = substitute_below_threshold(x, replacement, scores, 0.02)
    # θ itself is kept (score >= θ), strictly below is replaced
    assert out.flatten().tolist() == [1., -2., 3., -4.]
    allowed = torch.tensor([True, False, True, True])
    out = substitute_below_threshold(x, replacement, scores, 0.02, allowed)
    assert out.flatten().tolist() == [1., 2., 3., -4.]
    # the gradient goes to the token that is used
    x.requires_grad_()
    replacement.requires_grad_()
    substitute_below_threshold(x, replacement, scores, 0.02).sum().backward()
    assert x.grad.flatten().tolist() == [1., 0., 1., 0.]
    assert replacement.grad.flatten().tolist() == [0., 1., 0., 1.]


def test_score_predictor_is_per_modality():
    torch.manual_seed(0)
    predictor = ScorePredictor(2, 8)
    x = torch.randn(2 * 3, 5, 8)
    scores = predictor(x)
    assert scores.shape == (2, 3, 5)
    assert ((scores > 0) & (scores < 1)).all()
    # modality 1's rows do not change modality 0's scores
    y = x.clone()
    y[3:] = torch.randn(3, 5, 8)
    torch.testing.assert_close(predictor(y)[0], scores[0])
    assert not torch.allclose(predictor(y)[1], scores[1])
