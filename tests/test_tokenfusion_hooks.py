"""TokenFusion's training statistics hook (log text, LocalVisBackend json,
tensorboard) and the token exchange figure (Figure 4 of the paper):
drawing functions on hand-made scores and the CLI end to end."""
import glob
import json
import os.path as osp
import subprocess
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MessageHub

from .conftest import REPO_ROOT

DEMO = osp.join(
    REPO_ROOT, 'configs/tokenfusion/'
    'tokenfusion_mit-tiny_1xb8-1k_synthetic-rgbd-64x64.py')
STAGES = ('stage1', 'stage2', 'stage3', 'stage4')
MODALITIES = ('rgb', 'depth')
STATISTICS = ('exchanged', 'score_mean', 'score_std', 'score_min', 'score_max')
FUSION_KEYS = {
    f'fusion/{s}/{m}/{k}'
    for s in STAGES
    for m in MODALITIES
    for k in STATISTICS
}


def data_options(data_root):
    """The synthetic set in ``data_root``: 8 train / 2 test images."""
    options = []
    for loader in ('train', 'val', 'test'):
        options += [
            f'{loader}_dataloader.dataset.data_root={data_root}',
            f'{loader}_dataloader.dataset.num_train=8',
            f'{loader}_dataloader.dataset.num_test=2',
            f'{loader}_dataloader.num_workers=0',
            f'{loader}_dataloader.persistent_workers=False'
        ]
    return options


def run(args, cwd):
    proc = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    return output


# ----------------------------------------------------------------------------
# TokenFusionStatsHook


def fake_runner(model, iteration=0):
    return SimpleNamespace(
        model=model,
        iter=iteration,
        hooks=[],
        message_hub=MessageHub.get_instance(f'tf_hook_test_{id(model)}'))


def test_stats_hook_needs_fusion_stats_and_publishes_at_interval():
    from projects.tokenfusion.engine import TokenFusionStatsHook
    hook = TokenFusionStatsHook(interval=2)
    with pytest.raises(TypeError, match='fusion_stats'):
        hook.before_train(fake_runner(nn.Linear(2, 2)))

    model = nn.Linear(2, 2)
    model.fusion_stats = {
        'stage1/rgb/exchanged': torch.tensor(0.25),
        'stage1/rgb/score_mean': torch.tensor(0.5)
    }
    runner = fake_runner(model, iteration=0)
    hook.before_train(runner)
    hook.after_train_iter(runner, 0)  # iteration 1: not yet
    assert 'train/fusion/stage1/rgb/exchanged' not in \
        runner.message_hub.log_scalars
    runner.iter = 1  # iteration 2
    hook.after_train_iter(runner, 1)
    scalars = runner.message_hub.log_scalars
    assert scalars['train/fusion/stage1/rgb/exchanged'].current() == 0.25
    assert scalars['train/fusion/stage1/rgb/score_mean'].current() == 0.5
    with pytest.raises(ValueError):
        TokenFusionStatsHook(interval=0)


@pytest.fixture(scope='module')
def trained_with_stats(tmp_path_factory):
    """4 iterations of the demo with θ = 1 (every token exchanged), the
    stats hook every 2 iterations, the logger every iteration and a
    tensorboard backend next to the LocalVisBackend."""
    tmp = tmp_path_factory.mktemp('stats_hook')
    base = Config.fromfile(DEMO)
    hooks = [
        hook for hook in base.get('custom_hooks', [])
        if hook['type'] != 'TokenFusionStatsHook'
    ] + [dict(type='TokenFusionStatsHook', interval=2)]
    config = tmp / 'stats.py'
    config.write_text(f'_base_ = [{DEMO!r}]\n'
                      f'custom_hooks = {hooks!r}\n'
                      'visualizer = dict(vis_backends=['
                      "dict(type='LocalVisBackend'), "
                      "dict(type='TensorboardVisBackend')])\n"
                      'model = dict(backbone=dict(fusion_threshold=1.0))\n')
    work_dir = tmp / 'work'
    log = run([
        sys.executable,
        osp.join(REPO_ROOT, 'tools/train.py'),
        str(config), '--work-dir',
        str(work_dir), '--cfg-options', 'train_cfg.max_iters=4',
        'train_cfg.val_interval=100', 'default_hooks.checkpoint.interval=100',
        'default_hooks.logger.interval=1', 'train_dataloader.batch_size=2'
    ] + data_options(tmp / 'synthetic'), tmp)
    vis_dirs = glob.glob(str(work_dir / '*' / 'vis_data'))
    assert len(vis_dirs) == 1, vis_dirs
    return log, vis_dirs[0]


def check_values(stats):
    assert FUSION_KEYS <= set(stats), FUSION_KEYS - set(stats)
    for key in FUSION_KEYS:
        assert 0 <= stats[key] <= 1, (key, stats[key])
    for s in STAGES:
        for m in MODALITIES:
            key = f'fusion/{s}/{m}'
            # θ = 1 exchanges every token
            assert stats[f'{key}/exchanged'] == 1.0
            assert stats[f'{key}/score_min'] <= stats[f'{key}/score_mean'] \
                <= stats[f'{key}/score_max']


def test_stats_hook_log_text_and_json(trained_with_stats):
    log, vis_dir = trained_with_stats
    lines = {
        i:
        next(line for line in log.splitlines()
             if f'Iter(train) [{i}/4]' in line)
        for i in range(1, 5)
    }
    assert 'fusion/' not in lines[1]  # first published at iteration 2
    for i in (2, 3, 4):
        for key in FUSION_KEYS:
            assert f'{key}: ' in lines[i], (key, lines[i])
        assert 'fusion/stage3/depth/exchanged: 1.0000' in lines[i]
    # logger interval 1 is no multiple of the hook's: it says so
    assert 'does not divide the LoggerHook interval 1' in log

    with open(osp.join(vis_dir, 'scalars.json')) as f:
        records = {r['step']: r for r in map(json.loads, f) if 'loss' in r}
    assert sorted(records) == [1, 2, 3, 4]
    assert not FUSION_KEYS & set(records[1])
    for step in (2, 3, 4):
        check_values(records[step])


def test_stats_hook_tensorboard(trained_with_stats):
    from tensorboard.backend.event_processing.event_accumulator import \
        EventAccumulator
    _, vis_dir = trained_with_stats
    events = glob.glob(osp.join(vis_dir, 'events.out.tfevents.*'))
    assert len(events) == 1, events
    accumulator = EventAccumulator(events[0])
    accumulator.Reload()
    assert FUSION_KEYS <= set(accumulator.Tags()['scalars'])
    by_step = {}
    for key in FUSION_KEYS:
        scalars = accumulator.Scalars(key)
        assert [e.step for e in scalars] == [2, 3, 4], key
        for event in scalars:
            by_step.setdefault(event.step, {})[key] = event.value
    for stats in by_step.values():
        check_values(stats)


# ----------------------------------------------------------------------------
# visualize_token_exchange


def test_exchange_maps_upsampling_and_overlay():
    from tools.analysis_tools.visualize_token_exchange import (
        default_layers, exchange_maps, overlay_exchange, upsample_token_map)
    theta = 0.3
    # 2 modalities on a 2x3 token grid; a score equal to θ is kept
    scores = torch.tensor([[0.1, 0.3, 0.9, 0.29, 0.5, 0.0],
                           [0.6, 0.2, 0.3, 0.31, 0.05, 0.7]])
    maps = exchange_maps(scores, theta, (2, 3))
    assert maps.shape == (2, 2, 3)
    # rgb takes from depth (1), depth from rgb (0), -1 = kept
    assert maps[0].tolist() == [[1, -1, -1], [1, -1, 1]]
    assert maps[1].tolist() == [[-1, 0, -1], [-1, 0, -1]]
    with pytest.raises(ValueError):
        exchange_maps(scores, theta, (3, 3))

    # M = 3: the source comes from the allocation
    allocation = torch.tensor([[1, 2, 1, 2], [0, 0, 2, 2], [1, 0, 0, 1]])
    scores3 = torch.tensor([[0.1, 0.1, 0.5, 0.1], [0.5, 0.1, 0.1, 0.5],
                            [0.1, 0.5, 0.5, 0.5]])
    maps3 = exchange_maps(scores3, theta, (2, 2), allocation)
    assert maps3.tolist() == [[[1, 2], [-1, 2]], [[-1, 0], [2, -1]],
                              [[1, -1], [-1, -1]]]
    with pytest.raises(ValueError):
        exchange_maps(scores3, theta, (2, 2))

    # each 4x4 token cell of a 2x3 grid covers 4x4 pixels of an 8x12 image
    pixels = upsample_token_map(maps, (8, 12))
    assert pixels.shape == (2, 8, 12)
    for i in range(2):
        for j in range(3):
            cell = pixels[:, 4 * i:4 * i + 4, 4 * j:4 * j + 4]
            assert (cell == maps[:, i, j, None, None]).all()
    # not divisible: pixel (y, x) shows token (y * 2 // 5, x * 3 // 7)
    odd = upsample_token_map(maps[0], (5, 7))
    assert odd[:, 0].tolist() == [1, 1, 1, 1, 1]
    assert odd[0].tolist() == [1, 1, 1, -1, -1, -1, -1]
    assert odd[3].tolist() == [1, 1, 1, -1, -1, 1, 1]

    image = np.full((8, 12, 3), 100, np.uint8)
    colours = [(0, 0, 250), (250, 0, 0)]
    out = overlay_exchange(image, pixels[0], colours, alpha=0.5)
    marked = pixels[0] >= 0
    assert (out[~marked] == 100).all()
    # rgb's exchanged tokens (from depth = 1) in depth's colour
    assert (out[marked] == [175, 50, 50]).all()
    assert marked.sum() == 3 * 16
    out_depth = overlay_exchange(image, pixels[1], colours, alpha=0.5)
    assert (out_depth[pixels[1] == 0] == [50, 50, 175]).all()
    assert (out_depth[pixels[1] < 0] == 100).all()
    assert (image == 100).all()  # not modified in place

    assert default_layers(
        ['block1.0', 'block1.1', 'block2.0', 'block3.2',
         'block3.5']) == ['block1.1', 'block2.0', 'block3.5']


@pytest.fixture
def random_checkpoint(tmp_path):
    from mmseg.registry import MODELS
    cfg = Config.fromfile(DEMO)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    path = tmp_path / 'random.pth'
    torch.save({'state_dict': model.state_dict()}, path)
    return path


def test_visualize_token_exchange_cli(tmp_path, random_checkpoint, capsys):
    from projects.multimodal_seg.transforms.loading import read_depth
    from projects.multimodal_seg.visualization.multimodal_visualizer import \
        colourize_depth
    from tools.analysis_tools import visualize_token_exchange
    data_root = tmp_path / 'synthetic'
    script = osp.join(REPO_ROOT,
                      'tools/analysis_tools/visualize_token_exchange.py')

    def args(theta):
        return [
            DEMO,
            str(random_checkpoint), '--scale', '2', '--out-dir',
            str(tmp_path / f'vis_{theta}')
        ] + {
            # every token exchanged, the default layers (last of each stage)
            1.0: ['--index', '0', '--index', '1'],
            # none exchanged, two chosen layers
            0.0: ['--index', '1', '--layers', 'block2.0', 'block4.0'],
        }[theta] + [
            '--cfg-options', f'model.backbone.fusion_threshold={theta}'
        ] + data_options(data_root)

    # θ = 1 as a command, θ = 0 meanwhile in this process (the data set
    # generation is safe against a concurrent one)
    proc = subprocess.Popen(
        [sys.executable, script] + args(1.0),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True)
    outputs = {}
    try:
        paths = visualize_token_exchange.main(args(0.0))
        outputs[0.0] = capsys.readouterr().out
    finally:
        outputs[1.0] = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, outputs[1.0][-4000:]
    assert paths == [str(tmp_path / 'vis_0.0' / 'test_0001_00009.png')]

    def raw_images(png):
        name = osp.basename(png).split('_')[-1]
        rgb = cv2.imread(str(data_root / 'rgb' / name))[..., ::-1]
        depth = colourize_depth(read_depth(str(data_root / 'depth' / name)))
        return [rgb, depth]

    def panels(png, rows):
        figure = cv2.imread(png)[..., ::-1]
        layout = visualize_token_exchange.FigureLayout(rows, 2, (128, 128))
        assert figure.shape[:2] == layout.size
        for row in range(rows):
            for col in range(2):
                y0, x0, y1, x1 = layout.panel_box(row, col)
                # undo the 2x upscaling, checking it was nearest
                panel = figure[y0:y1, x0:x1]
                assert (panel[0::2, 0::2] == panel[1::2, 1::2]).all()
                yield row, col, panel[0::2, 0::2]

    everything = sorted(glob.glob(str(tmp_path / 'vis_1.0' / '*.png')))
    assert [osp.basename(p)[:9]
            for p in everything] == ['test_0000', 'test_0001']
    for png in everything:
        assert png in outputs[1.0]
        images = raw_images(png)
        for row, col, panel in panels(png, rows=4):
            source = np.full((64, 64), 1 - col)  # rgb <- depth, depth <- rgb
            assert (panel == visualize_token_exchange.overlay_exchange(
                images[col], source)).all()
            assert (panel != images[col]).any(axis=2).mean() > 0.9
    assert outputs[1.0].count('exchanged  rgb: 1.0000  depth: 1.0000') == 8
    for layer in ('block1.0', 'block2.0', 'block3.0', 'block4.0'):
        assert f'  {layer} exchanged' in outputs[1.0]

    nothing = glob.glob(str(tmp_path / 'vis_0.0' / '*.png'))
    assert outputs[0.0].count('exchanged  rgb: 0.0000  depth: 0.0000') == 2
    assert len(nothing) == 1 and osp.basename(
        nothing[0]).startswith('test_0001')
    images = raw_images(nothing[0])
    count = 0
    for row, col, panel in panels(nothing[0], rows=2):
        assert (panel == images[col]).all()  # no highlight
        count += 1
    assert count == 4
