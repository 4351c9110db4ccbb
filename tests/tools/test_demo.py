"""``make demo``'s choice of data and models (``--data``, ``--fusion``)."""
import os.path as osp

import pytest
from mmengine.config import Config

from tools import run_demo
from ..utils import REPO_ROOT


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


# what each --fusion strategy's config must fuse with
STRATEGY_LAYERS = dict(
    nofusion=[],
    tokenfusion=['TokenExchange'],
    channel=['TokenExchange', 'ChannelExchange'],
    geminifusion=['GeminiFusion'],
    **{'geminifusion-swin': ['GeminiFusion']})


def fusion_types(cfg):
    fusion = cfg.model.backbone.get('fusion')
    layers = [] if fusion is None else [fusion] if 'type' in fusion \
        else fusion
    return [layer['type'] for layer in layers]


@pytest.mark.parametrize('data', ['rgbd', 'rgbdel'])
def test_every_demo_row_runs_the_model_it_names(data):
    """Each row's config reads the demo's data with the row's modalities
    and fuses with the row's strategy."""
    modalities = dict(
        rgbd=('rgb', 'depth'), rgbdel=('rgb', 'depth', 'event', 'lidar'))[data]
    rows = dict(run_demo.demo_models(['all'], data=data))
    for name, config in rows.items():
        cfg = Config.fromfile(osp.join(REPO_ROOT, config))
        used = tuple(cfg.train_dataloader.dataset.modalities)
        assert used == tuple(cfg.model.data_preprocessor.modalities), name
        if name.startswith('RGB only'):
            assert used == ('rgb', )
        elif name.startswith('Depth only'):
            assert used == ('depth', )
        else:
            assert used == modalities, name
        if name.startswith(('RGB only', 'Depth only', 'Early concat')):
            assert cfg.model.type == 'EncoderDecoder', name
    strategies = run_demo.DEMO_DATA[data]['fusion']
    for strategy, (name, config) in strategies.items():
        cfg = Config.fromfile(osp.join(REPO_ROOT, config))
        assert cfg.model.type == 'MultiStreamEncoderDecoder', name
        assert fusion_types(cfg) == STRATEGY_LAYERS[strategy], name
        swin = cfg.model.backbone.type == 'FusedSwin'
        assert swin == strategy.endswith('-swin'), name
        hub = cfg.model.backbone.get('hub')
        assert (hub is not None) == (strategy == 'geminifusion'
                                     and data == 'rgbdel'), name


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


def test_translation_demo_rows():
    """Every generator of the translation demo gets the same data, budget
    and seed; each row's config builds the generator it names."""
    rows = run_demo.demo_models(['all'], data='translation')
    assert [n for n, _ in rows] == [
        'Shade only', 'Texture only', 'Early concat', 'Shared MiT, no fusion',
        'TokenFusion', 'GeminiFusion'
    ]
    expected = {
        'Shade only': (('reshading', ), None, 3),
        'Texture only': (('edge_texture', ), None, 3),
        'Early concat': (('reshading', 'edge_texture'), None, 6),
        'Shared MiT, no fusion': (('reshading', 'edge_texture'), None, 3),
        'TokenFusion': (('reshading', 'edge_texture'), 'TokenExchange', 3),
        'GeminiFusion': (('reshading', 'edge_texture'), 'GeminiFusion', 3),
    }
    budgets = set()
    for name, config in rows:
        cfg = Config.fromfile(osp.join(REPO_ROOT, config))
        sources, fusion, in_channels = expected[name]
        assert tuple(cfg.train_dataloader.dataset.sources) == sources, name
        generator = cfg.model.generator
        assert (generator.fusion or {}).get('type') == fusion, name
        assert generator.get('in_channels', 3) == in_channels, name
        budgets.add((cfg.train_cfg.max_iters, cfg.randomness.seed,
                     cfg.train_dataloader.batch_size))
    assert budgets == {(1000, 0, 4)}


def test_translation_table():
    metrics = {
        f'translation/ensemble_{k}': v
        for k, v in dict(mae=0.1234, mse=0.05, psnr=21.456, ssim=0.7).items()
    }
    table = run_demo.format_translation_table([('TokenFusion', metrics)])
    assert table.splitlines()[2] == \
        '| TokenFusion | 0.1234 | 0.0500 |  21.46 | 0.7000 |'


def test_table_columns_line_up_for_long_names():
    table = run_demo.format_table([
        ('Shared MiT, no fusion RGB-D',
         dict(aAcc=97.75, mIoU=87.71, mAcc=90.68)),
        ('RGB only', dict(aAcc=90.5, mIoU=37.57, mAcc=54.73)),
    ])
    lines = table.splitlines()
    assert len({line.index('|', 2) for line in lines}) == 1
    assert '| RGB only ' in table and '87.71' in table


def test_tools_run_with_pinned_threads_and_kernels(monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '7')
    env = run_demo.tool_env(3)
    assert env['OMP_NUM_THREADS'] == env['MKL_NUM_THREADS'] == '3'
    monkeypatch.setattr(run_demo.platform, 'machine', lambda: 'x86_64')
    env = run_demo.tool_env(2)
    assert env['ATEN_CPU_CAPABILITY'] == 'avx2'
    assert env['ONEDNN_MAX_CPU_ISA'] == env['MKL_CBWR'] == 'AVX2'
    monkeypatch.setattr(run_demo.platform, 'machine', lambda: 'aarch64')
    monkeypatch.delenv('ATEN_CPU_CAPABILITY', raising=False)
    assert 'ATEN_CPU_CAPABILITY' not in run_demo.tool_env(2)


def test_seed_reaches_the_training_command(tmp_path, monkeypatch):
    calls = []

    def fake_run(cmd, log_file, threads):
        calls.append((cmd, threads))
        if 'tools/train.py' in cmd:
            work_dir = cmd[cmd.index('--work-dir') + 1]
            with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
                f.write('ckpt.pth')
        else:
            metrics = cmd[cmd.index('--metrics-json') + 1]
            with open(metrics, 'w') as f:
                f.write('{"aAcc": 1, "mIoU": 2, "mAcc": 3}')

    monkeypatch.setattr(run_demo, 'run', fake_run)
    metrics = run_demo.train_and_test(
        'RGB only', 'a.py', str(tmp_path), show=False, seed=5, threads=1)
    assert metrics == dict(aAcc=1, mIoU=2, mAcc=3)
    (train, train_threads), (test, test_threads) = calls
    assert train[-2:] == ['--cfg-options', 'randomness.seed=5']
    assert '--cfg-options' not in test and train_threads == test_threads == 1


def test_mctf_demo_measures_what_its_models_can_take():
    """Every r of the sweep passes both merging configs' safeguards, and
    the pictures show the r both were fine-tuned at."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    from tools import run_demo_mctf
    for config in (run_demo_mctf.MCTF, run_demo_mctf.TOME):
        cfg = Config.fromfile(osp.join(REPO_ROOT, config))
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            backbone = MODELS.build(cfg.model).backbone
        assert backbone.r == run_demo_mctf.R_PICTURE
        for r in run_demo_mctf.R_SWEEP:
            assert backbone.token_counts(r=r)[-1] >= 10
    assert run_demo_mctf.R_PICTURE in run_demo_mctf.R_SWEEP
    assert run_demo_mctf.PLAIN[1].startswith('configs/mctf/vit-tiny-p4')
