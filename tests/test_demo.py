"""``make demo``'s choice of data and models (``--data``, ``--fusion``)."""
import os.path as osp

import pytest

from tools import run_demo

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def names(models):
    return [name for name, _ in models]


def test_default_is_baselines_plus_tokenfusion():
    assert names(run_demo.demo_models()) == [
        'RGB only', 'Depth only', 'Early concat RGB-D', 'TokenFusion RGB-D'
    ]


def test_fusion_flag_selects_strategies_in_table_order():
    models = run_demo.demo_models(['geminifusion', 'tokenfusion'])
    assert names(models)[3:] == ['TokenFusion RGB-D', 'GeminiFusion RGB-D']
    assert dict(models)['GeminiFusion RGB-D'].endswith(
        'geminifusion_mit-tiny_1xb8-1k_synthetic-rgbd-64x64.py')
    strategies = run_demo.DEMO_DATA['rgbd']['fusion']
    assert len(run_demo.demo_models(['all'])) == 3 + len(strategies)
    assert names(run_demo.demo_models(['all']))[3] == \
        'Shared MiT, no fusion RGB-D'
    assert names(run_demo.demo_models(
        ['none'])) == ['RGB only', 'Depth only', 'Early concat RGB-D']
    assert names(
        run_demo.demo_models(['all'], only=['GeminiFusion Swin RGB-D'
                                            ])) == ['GeminiFusion Swin RGB-D']


def test_four_modality_demo():
    models = run_demo.demo_models(['all'], data='rgbdel')
    assert names(models) == [
        'Early concat RGB-D-E-L', 'TokenFusion RGB-D-E-L',
        'GeminiFusion RGB-D-E-L'
    ]
    assert all('synthetic-rgbdel' in config for _, config in models)


@pytest.mark.parametrize('data', sorted(run_demo.DEMO_DATA))
def test_every_demo_config_exists(data):
    for _, config in run_demo.demo_models(['all'], data=data):
        assert osp.isfile(osp.join(ROOT, config)), config


@pytest.mark.parametrize('fusion, only, data, message', [
    (['gemini'], None, 'rgbd', 'unknown fusion strategies'),
    (['channel'], None, 'rgbdel', 'for the rgbdel demo'),
    (['tokenfusion'], ['GeminiFusion RGB-D'], 'rgbd', 'not among the rows'),
    (['tokenfusion'], None, 'rgbt', 'unknown demo data'),
])
def test_bad_choices_are_errors(fusion, only, data, message):
    with pytest.raises(ValueError, match=message):
        run_demo.demo_models(fusion, only, data)


def test_command_line_error_names_the_choices(capsys):
    with pytest.raises(SystemExit):
        run_demo.main(['--fusion', 'gemini'])
    assert 'geminifusion' in capsys.readouterr().err


def test_table_columns_line_up_for_long_names():
    table = run_demo.format_table([
        ('Shared MiT, no fusion RGB-D',
         dict(aAcc=97.75, mIoU=87.71, mAcc=90.68)),
        ('RGB only', dict(aAcc=90.5, mIoU=37.57, mAcc=54.73)),
    ])
    lines = table.splitlines()
    assert len({line.index('|', 2) for line in lines}) == 1
    assert '| RGB only ' in table and '87.71' in table
