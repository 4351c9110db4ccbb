"""Where the seed fusion replaces: regions of seeds, the counter, and the
analysis tool on a checkpoint."""
import json

import pytest
import torch
from mmdet3d.structures import DepthInstance3DBoxes

import projects.multimodal_det3d  # noqa: F401  (registers, CPU point ops)
from projects.multimodal_det3d.analysis import (BACKGROUND, SeedRegionCounter,
                                                seed_regions)
from .test_tokenfusion_groupfree3d import (SYNTHETIC_FUSION, build_detector,
                                           tiny_fusion_cfg)

__all__ = ['tiny_fusion_cfg']  # fixture used here


def test_seed_regions_name_the_box_class_or_background():
    boxes = DepthInstance3DBoxes(
        torch.tensor([[0., 0., 0., 2., 2., 2., 0.],
                      [5., 0., 0., 1., 1., 1., 0.]]),
        origin=(0.5, 0.5, 0.5))
    labels = torch.tensor([3, 1])
    xyz = torch.tensor([[0., 0., 0.], [5., 0.2, 0.1], [9., 9., 9.]])
    classes = ('bed', 'table', 'chair', 'desk', 'bookshelf')
    assert seed_regions(xyz, boxes, labels, classes) == \
        ['desk', 'table', BACKGROUND]
    assert seed_regions(xyz, boxes[:0], labels[:0], classes) == \
        [BACKGROUND] * 3


def test_counter_counts_visible_seeds_only():
    counter = SeedRegionCounter(threshold=0.02)
    regions = ['desk', 'desk', 'chair', BACKGROUND, 'desk']
    scores = torch.tensor([0.01, 0.5, 0.001, 0.3, 0.001])
    valid = torch.tensor([True, True, True, True, False])
    counter.add(0, regions, scores, valid)
    counter.add(1, regions, torch.ones(5) * 0.001, valid)
    summary = counter.summary(
        dict(colour=['desk', 'table'], shape=['chair', 'bookshelf']))
    assert summary['decoder0']['colour'] == dict(
        visible=2, replaced=0.5, score_mean=pytest.approx(0.255))
    assert summary['decoder0']['shape']['replaced'] == 1.0
    assert summary['decoder0']['all']['visible'] == 4
    assert summary['decoder0']['all']['replaced'] == 0.5
    assert summary['decoder1']['all']['replaced'] == 1.0


@pytest.mark.parametrize('threshold,expected', [(1.0, 1.0), (0.0, 0.0)])
def test_tool_on_a_checkpoint(tmp_path, tiny_fusion_cfg, threshold, expected):
    from tools.analysis_tools import seed_fusion_statistics as tool
    model = build_detector(tiny_fusion_cfg)
    checkpoint = tmp_path / 'model.pth'
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    out = tmp_path / 'stats.json'
    root = tmp_path / 'data'
    tool.main([
        SYNTHETIC_FUSION,
        str(checkpoint), '--group', 'colour=table,desk', '--out',
        str(out), '--work-dir',
        str(tmp_path / 'work'), '--cfg-options',
        f'model.fusion.threshold={threshold}',
        f'test_dataloader.dataset.data_root={root}',
        'test_dataloader.dataset.num_train=1',
        'test_dataloader.dataset.num_val=2', 'test_dataloader.batch_size=2',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False'
    ])
    summary = json.loads(out.read_text())
    assert set(summary) == {'decoder0', 'decoder1'}
    for layer in summary.values():
        assert set(layer) == {'colour', 'all'}
        assert layer['all']['visible'] > 0
        assert layer['all']['replaced'] == expected
    with pytest.raises(ValueError, match='sofa'):
        tool.main([
            SYNTHETIC_FUSION,
            str(checkpoint), '--group', 'big=sofa', '--work-dir',
            str(tmp_path / 'work'), '--cfg-options',
            f'test_dataloader.dataset.data_root={root}',
            'test_dataloader.dataset.num_train=1',
            'test_dataloader.dataset.num_val=2',
            'test_dataloader.num_workers=0',
            'test_dataloader.persistent_workers=False'
        ])
