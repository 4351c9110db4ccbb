"""Token merging on a 2D grid, undone inside a block (the fused MiT): 2D
strided destinations, one merge map for every stream, copy-back
un-merging."""
import pytest
import torch

from projects.fusion_math import token_merging as merging


def test_destinations_are_the_top_left_token_of_every_cell():
    dst, src = merging.grid_destinations((5, 6), (2, 2))
    grid = torch.zeros(5, 6, dtype=torch.long)
    grid.view(-1)[dst] = 1
    expected = torch.zeros(5, 6, dtype=torch.long)
    expected[0::2, 0::2] = 1  # edge cells (the 5th row) included
    assert torch.equal(grid, expected)
    assert sorted(torch.cat([dst, src]).tolist()) == list(range(30))


def group_mean_broadcast(x, index):
    """For every token, the mean of the tokens sharing its merged token,
    by an explicit loop over the groups."""
    out = torch.empty_like(x)
    for b in range(index.shape[0]):
        for group in index[b].unique():
            members = index[b] == group
            out[b, members] = x[b, members].mean(dim=0)
    return out


@pytest.mark.parametrize('ratio,radius', [(0.25, 1), (0.5, 1), (0.75, 1),
                                          (0.5, None), (0.5, 0)])
def test_unmerge_of_merge_is_the_group_mean_broadcast(ratio, radius):
    torch.manual_seed(0)
    streams, batch, hw, dims = 2, 3, (6, 8), 5
    x = torch.randn(streams, batch, 48, dims)
    merge = merging.grid_matching(x, hw, ratio, (2, 2), radius)
    assert merge.index.shape == (batch, 48)
    assert merge.num_merged == 48 - min(int(48 * ratio), 36)
    assert torch.equal(merge.size.sum(dim=1)[:, 0], torch.full((batch, ), 48.))
    stack = x.flatten(0, 1)
    merged = merging.grid_merge(merge, stack)
    assert merged.shape == (streams * batch, merge.num_merged, dims)
    roundtrip = merging.grid_unmerge(merge, merged)
    for m in range(streams):  # the same groups in every stream
        rows = slice(m * batch, (m + 1) * batch)
        assert torch.allclose(
            roundtrip[rows],
            group_mean_broadcast(x[m], merge.index),
            atol=1e-6)


def test_every_group_holds_one_destination_nearby():
    torch.manual_seed(1)
    hw = (8, 10)
    x = torch.randn(1, 2, 80, 4)
    merge = merging.grid_matching(x, hw, 0.75, (2, 2), radius=1)
    dst, _ = merging.grid_destinations(hw, (2, 2))
    # destinations are the first slots, one each, in cell order
    assert torch.equal(merge.index[:, dst],
                       torch.arange(dst.numel()).expand(2, -1))
    assert merge.num_merged == dst.numel()  # 0.75: every other token
    rows, cols = torch.arange(80) // 10, torch.arange(80) % 10
    for b in range(2):
        target = dst[merge.index[b]]  # the destination each token joined
        assert (((rows // 2) - (rows[target] // 2)).abs() <= 1).all()
        assert (((cols // 2) - (cols[target] // 2)).abs() <= 1).all()


def test_one_merge_map_from_the_criteria_of_all_streams():
    # destinations 0 and 2 (stride 1 x 2). Token 1 is identical to
    # destination 0 in stream 0 (cosine 1, to destination 2: 0) and to
    # destination 2 in stream 1 (cosine 1, to destination 0: -1): the mean
    # over the streams picks destination 2 for both streams
    hw = (1, 4)
    e = torch.eye(3)
    x = torch.stack([
        torch.stack([e[0], e[0], e[1], e[2]]),
        torch.stack([-e[0], e[0], e[0], e[2]]),
    ])[:, None]  # (2 streams, 1 image, 4 tokens, 3)
    merge = merging.grid_matching(x, hw, 0.25, (1, 2), radius=None)
    # token 1 merges (slot 1), token 3 stays (slot 2)
    assert merge.index.tolist() == [[0, 1, 1, 2]]
    alone = merging.grid_matching(x[:1], hw, 0.25, (1, 2), radius=None)
    assert alone.index.tolist() == [[0, 0, 1, 2]]  # stream 0 alone differs


def test_first_position_of_every_group():
    index = torch.tensor([[1, 0, 0, 2, 1]])
    merge = merging.GridMerge(index, torch.tensor([[[2.], [2.], [1.]]]))
    assert merging.group_first(merge).tolist() == [[1, 0, 3]]


def test_ratio_is_checked_against_the_stride():
    with pytest.raises(ValueError, match=r'\[0, 0.75\]'):
        merging.grid_matching(torch.randn(1, 16, 2), (4, 4), 0.8)
    with pytest.raises(ValueError, match='grid'):
        merging.grid_matching(torch.randn(1, 15, 2), (4, 4), 0.5)
