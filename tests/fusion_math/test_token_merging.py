"""MCTF / ToMe token merging as pure functions: the reduction rules, the
criteria, the bidirectional matching and its output order, pooling and
attention merging against dense group matrices, un-merging, and ToMe as a
setting on hand-made tokens."""
import math

import pytest
import torch

from projects.fusion_math import token_merging as tm


def test_reduction_count_follows_the_reference_trace():
    tokens = [197]
    for _ in range(11):  # r = 16 on blocks 1..11 of DeiT
        tokens.append(tokens[-1] - tm.reduction_count(tokens[-1], 16))
    assert tokens == [197, 181, 165, 149, 133, 117, 101, 85, 69, 53, 37, 21]
    fast = [197]
    for _ in range(3):  # tm.MCTF-Fast: r = 0.35 on blocks 3, 6, 9
        fast.append(fast[-1] - tm.reduction_count(fast[-1], 0.35))
    assert fast == [197, 129, 85, 56]
    assert tm.reduction_count(197, 0) == 0
    assert tm.reduction_count(197, 0.) == 0


@pytest.mark.parametrize(
    'tokens, r, clamped',
    [
        (21, 16, 10),  # at most half of the 20 unprotected tokens
        (18, 8, 8),  # half is 8, and 10 are left: allowed
        (17, 8, 7),  # T - r < 10
        (10, 1, 0),
        (10, 0.2, 0),  # a fraction merges nothing at 10 tokens
        (11, 0.9, 5),  # half of 10
    ])
def test_safeguards_error_or_clamp(tokens, r, clamped):
    if clamped == (int(r) if r >= 1 else int((tokens - 1) * r)):
        assert tm.reduction_count(tokens, r) == clamped
    else:
        with pytest.raises(ValueError, match=f'r={r} removes'):
            tm.reduction_count(tokens, r)
    assert tm.reduction_count(tokens, r, overflow='clamp') == clamped


@pytest.mark.parametrize('kwargs, message', [
    (dict(r=-1), 'r must be'),
    (dict(r=2.5), 'r must be'),
    (dict(r=2, num_protected=197), 'protected tokens do not fit'),
    (dict(r=2, overflow='saturate'), 'overflow must be'),
])
def test_reduction_count_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tm.reduction_count(197, **kwargs)


def test_criteria_formulas():
    torch.manual_seed(0)
    x = torch.randn(2, 7, 5)
    attn = torch.rand(2, 3, 7, 7).softmax(-1)
    size = torch.randint(1, 5, (2, 7, 1)).float()
    tau = tm.MergeCriteria(2., 20., 40., True)
    scores = tm.merge_scores(x, tau, attn, size, num_protected=1)
    assert scores.shape == (2, 4, 3)
    received = attn.mean(dim=(1, 2))
    u = (1 / received) / (1 / received).amax(1, keepdim=True)
    v = (1 / size[..., 0]) / (1 / size[..., 0]).amax(1, keepdim=True)
    for b in range(2):
        for i in range(1, 4):
            for j in range(3):
                a_tok, b_tok = 2 * i, 2 * j + 1
                cos = torch.cosine_similarity(x[b, a_tok], x[b, b_tok], 0)
                expected = ((cos + 1) / 2)**0.5 * \
                    (u[b, a_tok] * u[b, b_tok])**(1 / 20) * \
                    (v[b, a_tok] * v[b, b_tok])**(1 / 40)
                assert scores[b, i, j] == pytest.approx(
                    expected.item(), rel=1e-5)
    assert torch.isinf(scores[:, 0]).all() and (scores[:, 0] < 0).all()
    # τ = 0 (or no input) leaves a criterion out
    only_sim = tm.merge_scores(x, tm.MergeCriteria(2., 0., 0.), attn, size, 0)
    assert torch.allclose(only_sim, tm.merge_scores(x, tau, None, None, 0))
    flat = tm.merge_scores(x, tm.MergeCriteria(0., 0., 0.), attn, size, 0)
    assert (flat == 1).all()


def test_criteria_bad_settings():
    x = torch.randn(1, 7, 4)
    with pytest.raises(ValueError, match='tau_info must be >= 0'):
        tm.merge_scores(x, tm.MergeCriteria(1., -1., 0.))
    with pytest.raises(ValueError, match='distillation token'):
        tm.merge_scores(x, tm.MCTF, num_protected=2)


def tome_tokens():
    """CLS + 6 tokens; A = positions 0 2 4 6, B = 1 3 5. Token 2 points
    the way of token 3 (cosine 1), token 4 nearly the way of token 5,
    token 6 elsewhere."""
    return torch.tensor([[[9., 9., 9.], [0., 1., 0.], [2., 0., 0.],
                          [1., 0., 0.], [0., 0., 1.], [0., .3, 1.],
                          [-1., -1., 0.]]])


def test_tome_setting_on_hand_made_tokens():
    x = tome_tokens()
    size = torch.ones(1, 7, 1)
    scores = tm.merge_scores(x, tm.TOME, num_protected=1)
    matching = tm.bipartite_matching(scores, 2, tm.TOME.bidirectional)
    assert not matching.bidirectional
    merged, new_size = tm.pool_tokens(matching, x, size, 'size')
    # 2 -> 3 (cosine 1), 4 -> 5; output [kept A: 0, 6 | B: 1, 3, 5]
    expected = torch.stack([
        x[0, 0], x[0, 6], x[0, 1], (x[0, 2] + x[0, 3]) / 2,
        (x[0, 4] + x[0, 5]) / 2
    ])
    torch.testing.assert_close(merged[0], expected)
    assert new_size[0, :, 0].tolist() == [1, 1, 1, 2, 2]
    # a second step: the size-weighted mean of a 2-token and a 1-token
    scores = tm.merge_scores(merged, tm.TOME, num_protected=1)
    second = tm.bipartite_matching(scores, 1, False)
    merged2, size2 = tm.pool_tokens(second, merged, new_size, 'size')
    assert size2.sum() == 7 and merged2.shape == (1, 4, 3)
    assert merged2[0, 0].tolist() == [9., 9., 9.]  # never merged


def test_bidirectional_steps_and_output_order():
    # CLS + 8 tokens: A = 0 2 4 6 8, B = 1 3 5 7
    scores = torch.tensor([[[-math.inf] * 4, [.9, .1, .2,
                                              .3], [.1, .2, .3, .4],
                            [.2, .8, .1, .1], [.3, .3, .7, .2]]])
    matching = tm.bipartite_matching(scores, 3, bidirectional=True)
    # step 1 (r // 2 = 1): A2 (best .9) -> B1
    assert matching.src_idx.tolist() == [[1]]
    assert matching.dst_idx.tolist() == [[0]]
    assert matching.unm_idx.tolist() == [[0, 2, 3, 4]]  # index order
    # step 2 (2 merges): B tokens pick among kept A 0 4 6 8 (columns
    # -inf, .1 .2 .3 | .2 .3 .4 .. per B): B3 -> A6 (.8), B5 -> A8 (.7)
    assert matching.src_idx2.tolist() == [[1, 2]]
    assert matching.dst_idx2.tolist() == [[2, 3]]
    # the kept B tokens in descending step-2 score: B7 (.4) before B1 (.3)
    assert matching.rest_idx2.tolist() == [[3, 0]]
    assert matching.num_merged == 6
    tokens = torch.arange(9.).view(1, 9, 1)
    out = tm.merge_tokens(matching, tokens)
    # [A0, A4, A6+B3, A8+B5 | B7, B1+A2]
    assert out[0, :, 0].tolist() == [0., 4., 6 + 3., 8 + 5., 7., 1 + 2.]
    index = tm.merge_index(matching)
    assert index[0].tolist() == [0, 5, 5, 2, 1, 3, 2, 4, 3]


def random_step(x, size, attn, r, criteria=tm.MCTF):
    scores = tm.merge_scores(x, criteria, attn, size)
    return tm.bipartite_matching(scores, r, criteria.bidirectional)


def dense_group_matrix(matching, batch):
    """(B, T', T) 0/1: which input token each merged token holds."""
    return tm.merge_source(matching, batch=batch)


@pytest.mark.parametrize('bidirectional', [True, False])
@pytest.mark.parametrize('pooling', ['size', 'attention_size', 'mean'])
def test_pooling_and_attention_against_group_matrices(bidirectional, pooling):
    torch.manual_seed(1)
    b, t, c, h = 2, 15, 4, 3
    x = torch.randn(b, t, c)
    size = torch.randint(1, 4, (b, t, 1)).float()
    attn = torch.randn(b, h, t, t).softmax(-1)
    criteria = tm.MCTF._replace(bidirectional=bidirectional)
    matching = random_step(x, size, attn, 5, criteria)
    groups = dense_group_matrix(matching, b)
    assert (groups.sum(1) == 1).all()  # every token in exactly one group
    weights = tm.token_weights(pooling, size, attn)
    pooled, new_size = tm.pool_tokens(matching, x, size, pooling, attn)
    torch.testing.assert_close(new_size, groups @ size)
    torch.testing.assert_close(pooled,
                               (groups @ (weights * x)) / (groups @ weights))
    merged = tm.merge_attention(matching, attn, size, pooling)
    columns = attn @ groups.transpose(1, 2)[:, None]
    rows = (groups[:, None] @ (weights[:, None] * columns)) / (
        groups @ weights)[:, None]
    torch.testing.assert_close(merged, rows)
    torch.testing.assert_close(merged.sum(-1), torch.ones(b, h, t - 5))


def test_max_pooling():
    torch.manual_seed(2)
    x = torch.randn(1, 9, 3)
    size = torch.ones(1, 9, 1)
    matching = random_step(x, size, None, 3)
    groups = dense_group_matrix(matching, 1)[0].bool()
    pooled, _ = tm.pool_tokens(matching, x, size, 'max')
    for i, members in enumerate(groups):
        torch.testing.assert_close(pooled[0, i], x[0, members].amax(0))
    with pytest.raises(ValueError, match="needs the attention map"):
        tm.token_weights('attention_size', size)


@pytest.mark.parametrize('bidirectional', [True, False])
def test_unmerge_agrees_with_the_dense_source_matrix(bidirectional):
    torch.manual_seed(3)
    b, t = 3, 23
    x = torch.randn(b, t, 6)
    size = torch.ones(b, t, 1)
    criteria = tm.MCTF._replace(bidirectional=bidirectional)
    source, index = None, torch.arange(t).expand(b, -1)
    for r in (5, 4, 3):
        attn = torch.randn(b, 2, x.shape[1], x.shape[1]).softmax(-1)
        matching = random_step(x, size, attn, r, criteria)
        source = tm.merge_source(matching, source, b)
        index = tm.compose_index(index, tm.merge_index(matching))
        x, size = tm.pool_tokens(matching, x, size, 'attention_size', attn)
    assert x.shape[1] == t - 12 and size.sum(1).eq(t).all()
    # the index map is the dense source matrix's column-wise argmax
    assert (source.sum(1) == 1).all()
    assert torch.equal(index, source.argmax(1))
    # un-merging copies each merged token to every patch it holds
    restored = tm.unmerge(x, index)
    assert torch.equal(restored, source.transpose(1, 2) @ x)
    assert (index[:, 0] == 0).all()  # the class token stays itself
    assert (size[:, 0] == 1).all()


def test_protected_token_never_merged_even_when_most_similar():
    x = torch.ones(1, 11, 3)  # every pair equally similar
    x[0, 0] = 5.
    size = torch.ones(1, 11, 1)
    for bidirectional in (True, False):
        matching = random_step(x, size, None, 5,
                               tm.MCTF._replace(bidirectional=bidirectional))
        index = tm.merge_index(matching)
        assert index[0, 0] == 0 and (index[0, 1:] != 0).all()


def test_merge_checks_token_count_and_proportional_bias():
    x = torch.randn(1, 9, 2)
    matching = random_step(x, torch.ones(1, 9, 1), None, 2)
    with pytest.raises(ValueError, match='the matching is for 9 tokens'):
        tm.merge_tokens(matching, torch.randn(1, 8, 2))
    with pytest.raises(ValueError, match='cannot merge 5 of 9'):
        tm.bipartite_matching(tm.merge_scores(x), 5)
    size = torch.tensor([[[1.], [2.], [4.]]])
    bias = tm.proportional_attention_bias(size)
    assert bias.shape == (1, 1, 1, 3)
    torch.testing.assert_close(bias.flatten(),
                               torch.log(torch.tensor([1., 2., 4.])))
