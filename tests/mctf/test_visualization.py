"""Merge pictures: patches grouped by the token they ended up in."""
import numpy as np
import pytest

from projects.mctf.visualization import (BORDER, group_colours, merge_picture,
                                         patch_groups)


def test_patch_groups_skip_extra_tokens_and_renumber():
    # class token, then a 2 x 3 grid whose patches 0, 1 and 5 share token 7
    index = np.array([0, 7, 7, 2, 4, 2, 7])
    groups = patch_groups(index, (2, 3), num_extra_tokens=1)
    np.testing.assert_array_equal(groups, [[0, 0, 1], [2, 1, 0]])
    with pytest.raises(ValueError, match='2x2 patch grid has 5 entries'):
        patch_groups(index, (2, 2), 1)


def test_merged_patches_are_tinted_lone_ones_kept_and_groups_outlined():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    groups = np.array([[0, 0, 1], [2, 1, 0]])  # patches of 2 x 2 pixels
    picture = merge_picture(image, groups, scale=2, alpha=1.0)
    assert picture.shape == (8, 12, 3)
    colours = group_colours(3)
    # group 0 (3 patches) and group 1 (2 patches) take their colour inside
    assert (picture[0, 0] == colours[0]).all()
    assert (picture[1, 5] == colours[0]).all()
    assert (picture[6, 9] == colours[0]).all()
    assert (picture[0, 8] == colours[1]).all()
    # group 2 is one patch: its pixels, upscaled
    np.testing.assert_array_equal(
        picture[4:7, 0:3],
        np.repeat(np.repeat(image[2:4, 0:2], 2, 0), 2, 1)[:3, :3])
    # a line between patches (0,1) and (0,2) (other groups), none inside
    # group 0 between patches (0,0) and (0,1)
    assert (picture[0:4, 7] == BORDER).all()
    assert not (picture[0:3, 3] == BORDER).all(axis=-1).any()
    with pytest.raises(ValueError, match='cannot be cut into a 2x3'):
        merge_picture(image[:3], groups)


def test_group_colours_are_distinct():
    colours = group_colours(12)
    assert len({tuple(c) for c in colours}) == 12
