"""The engine: the training statistics hook of the fusion layers (log
text, LocalVisBackend json, tensorboard), the staged schedule and the
optimizer restart."""
import glob
import json
import os.path as osp
import sys
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MessageHub

from projects.multimodal_seg.engine import (FusionStatsHook,
                                            RestartOptimizerHook, StagedPolyLR,
                                            staged_poly_factor)
from ..utils import REPO_ROOT, synthetic_data_options, tool

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

# ----------------------------------------------------------------------------
# FusionStatsHook


def fake_runner(model, iteration=0):
    return SimpleNamespace(
        model=model,
        iter=iteration,
        hooks=[],
        message_hub=MessageHub.get_instance(f'tf_hook_test_{id(model)}'))


def test_stats_hook_needs_fusion_stats_and_publishes_at_interval():
    hook = FusionStatsHook(interval=2)
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
        FusionStatsHook(interval=0)


@pytest.fixture(scope='module')
def trained_with_stats(tmp_path_factory):
    """4 iterations of the demo with θ = 1 (every token exchanged), the
    stats hook every 2 iterations, the logger every iteration and a
    tensorboard backend next to the LocalVisBackend."""
    tmp = tmp_path_factory.mktemp('stats_hook')
    base = Config.fromfile(DEMO)
    hooks = [
        hook for hook in base.get('custom_hooks', [])
        if hook['type'] != 'FusionStatsHook'
    ] + [dict(type='FusionStatsHook', interval=2)]
    config = tmp / 'stats.py'
    config.write_text(f'_base_ = [{DEMO!r}]\n'
                      f'custom_hooks = {hooks!r}\n'
                      'visualizer = dict(vis_backends=['
                      "dict(type='LocalVisBackend'), "
                      "dict(type='TensorboardVisBackend')])\n"
                      'model = dict(backbone=dict(fusion=dict(threshold=1.0)))'
                      '\n')
    work_dir = tmp / 'work'
    log = tool([
        sys.executable,
        osp.join(REPO_ROOT, 'tools/train.py'),
        str(config), '--work-dir',
        str(work_dir), '--cfg-options', 'train_cfg.max_iters=4',
        'train_cfg.val_interval=100', 'default_hooks.checkpoint.interval=100',
        'default_hooks.logger.interval=1', 'train_dataloader.batch_size=2'
    ] + synthetic_data_options(tmp / 'synthetic'), tmp)
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


# ------------------------------------------------------------- schedule
def test_staged_poly_factor_follows_the_reference():
    kw = dict(
        stage_iters=13200,
        stage_factors=(1, .5, .25),
        warmup_iters=1500,
        warmup_ratio=1e-6,
        poly_iters=40000,
        power=1.0)
    assert staged_poly_factor(0, **kw) == pytest.approx(1e-6)
    assert staged_poly_factor(750, **kw) == pytest.approx(0.5 + 0.5e-6)
    assert staged_poly_factor(1500, **kw) == pytest.approx(1 - 1500 / 40000)
    assert staged_poly_factor(13199, **kw) == pytest.approx(1 - 13199 / 4e4)
    assert staged_poly_factor(13200, **kw) == pytest.approx(0.5e-6)
    assert staged_poly_factor(26400 + 5000,
                              **kw) == pytest.approx(0.25 * (1 - 5000 / 40000))
    assert staged_poly_factor(10**6, **kw) == 0


def test_staged_lr_scheduler_and_optimizer_restart():
    param = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.AdamW([{
        'params': [param],
        'lr': 1.0
    }, {
        'params': [torch.nn.Parameter(torch.zeros(1))],
        'lr':
        10.0
    }])
    scheduler = StagedPolyLR(
        optimizer,
        stage_iters=10,
        stage_factors=(1, .5),
        warmup_iters=2,
        warmup_ratio=0.,
        poly_iters=20)
    lrs = []
    for step in range(14):
        lrs.append([g['lr'] for g in optimizer.param_groups])
        param.grad = torch.ones(2)
        optimizer.step()
        scheduler.step()
    assert lrs[0] == [0, 0] and lrs[1] == [0.5, 5.0]
    assert lrs[9][0] == pytest.approx(1 - 9 / 20)
    assert lrs[11][0] == pytest.approx(0.25) and lrs[11][1] == 2.5
    assert scheduler.stage_starts == [10]

    class Runner:
        iter = 10
        param_schedulers = [scheduler]
        optim_wrapper = type('W', (), {'optimizer': optimizer})()
        logger = type('L', (), {'info': staticmethod(lambda msg: None)})()

    assert optimizer.state  # Adam moments exist
    RestartOptimizerHook().before_train_iter(Runner, 0)
    assert not optimizer.state
