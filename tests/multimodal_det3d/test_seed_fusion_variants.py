"""The seed-key fusion rules, sparsity terms and schedules: equations and
gradients on tensors, the hook with an iteration-based loop, tensor mode."""
import copy
import functools

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import projects.multimodal_det3d  # noqa: F401  (registers, CPU point ops)
from projects.multimodal_det3d.engine import TokenFusion3DHook
from projects.multimodal_det3d.models.fusion_layers.seed_fusion import (
    SeedKeyFusion, seed_sparsity_loss, substitute_seed_keys)
from .test_tokenfusion_groupfree3d import (SYNTHETIC_FUSION, build_detector,
                                           run, synthetic_batch,
                                           tiny_fusion_cfg)

__all__ = ['synthetic_batch', 'tiny_fusion_cfg']  # fixtures used here

THRESHOLD = 0.02


def fusion_inputs():
    torch.manual_seed(0)
    keys = torch.randn(2, 6, 4)
    image_keys = torch.randn(2, 6, 4)
    scores = torch.tensor([[0.5, 0.01, 0.019, 0.02, 0.9, 0.001],
                           [0.001, 0.3, 0.01, 0.7, 0.005, 0.5]])
    valid = torch.tensor([[True, True, True, True, True, False],
                          [True, True, False, True, True, True]])
    return keys, image_keys, scores, valid


def test_hard_rule_is_the_reference_equation():
    keys, image_keys, scores, valid = fusion_inputs()
    out = substitute_seed_keys(keys, scores, image_keys, valid, THRESHOLD)
    for b in range(2):
        for n in range(6):
            if not valid[b, n]:  # outside every image: left as it is
                expected = keys[b, n]
            elif scores[b, n] < THRESHOLD:
                expected = image_keys[b, n]
            else:
                expected = keys[b, n] * scores[b, n]
            assert torch.equal(out[b, n], expected)


def score_gradient(substitution, upstream):
    """d<upstream, f>/ds of every seed, and f."""
    keys, image_keys, scores, valid = fusion_inputs()
    scores = scores.clone().requires_grad_()
    fused = substitute_seed_keys(keys, scores, image_keys, valid, THRESHOLD,
                                 substitution)
    (fused * upstream).sum().backward()
    return scores.grad, fused.detach()


@pytest.mark.parametrize('substitution',
                         ['hard', 'straight_through', 'soft_gate'])
def test_every_rule_leaves_seeds_outside_the_image_alone(substitution):
    keys, image_keys, scores, valid = fusion_inputs()
    fused = substitute_seed_keys(keys, scores, image_keys, valid, THRESHOLD,
                                 substitution)
    assert torch.equal(fused[~valid], keys[~valid])
    upstream = torch.randn(2, 6, 4)
    grad, _ = score_gradient(substitution, upstream)
    assert (grad[~valid] == 0).all()


def test_straight_through_forward_is_the_reference_and_reaches_replaced():
    keys, image_keys, scores, valid = fusion_inputs()
    upstream = torch.randn(2, 6, 4)
    hard_grad, hard = score_gradient('hard', upstream)
    ste_grad, ste = score_gradient('straight_through', upstream)
    assert torch.equal(ste, hard)  # bit for bit
    replaced = (scores < THRESHOLD) & valid
    kept = (scores >= THRESHOLD) & valid
    assert replaced.sum() == 4 and kept.sum() == 6
    # the reference: a replaced score gets nothing (the absorbing state)
    assert (hard_grad[replaced] == 0).all()
    expected = (upstream * (keys - image_keys)).sum(-1)
    assert torch.allclose(ste_grad[replaced], expected[replaced])
    # kept seeds: the reference's gradient through s * k, unchanged
    assert torch.allclose(ste_grad[kept], hard_grad[kept])
    assert torch.allclose(hard_grad[kept], (upstream * keys).sum(-1)[kept])


def test_soft_gate_mixes_key_and_image():
    keys, image_keys, scores, valid = fusion_inputs()
    upstream = torch.randn(2, 6, 4)
    grad, fused = score_gradient('soft_gate', upstream)
    s = scores[..., None]
    expected = s * keys + (1 - s) * image_keys
    assert torch.allclose(fused[valid], expected[valid])
    assert torch.allclose(grad[valid],
                          (upstream * (keys - image_keys)).sum(-1)[valid])


def test_unknown_substitution_is_rejected():
    with pytest.raises(ValueError, match="'gumbel'"):
        SeedKeyFusion(1, 8, 8, substitution='gumbel')


def test_sparsity_terms_use_the_seeds_inside_the_image():
    _, _, scores, valid = fusion_inputs()
    layers = [scores, scores.flip(-1)]
    inside = torch.cat([scores[valid], scores.flip(-1)[valid]])
    assert torch.allclose(
        seed_sparsity_loss(layers, valid, 'sum'), inside.sum())
    assert torch.allclose(
        seed_sparsity_loss(layers, valid, 'mean'), inside.mean())
    assert torch.allclose(
        seed_sparsity_loss(layers, valid, target_ratio=0.3),
        ((1 - inside).mean() - 0.3)**2)
    none = torch.zeros_like(valid)
    assert float(seed_sparsity_loss(layers, none, 'mean')) == 0
    with pytest.raises(ValueError, match="'max'"):
        seed_sparsity_loss(layers, valid, 'max')


def test_target_ratio_pulls_collapsed_scores_back_up():
    """At the collapse (every score near 0) the l1 terms still push down;
    the target-ratio term pushes up."""
    valid = torch.ones(2, 5, dtype=torch.bool)
    for reduction, target, sign in (('sum', None, 1.), ('mean', None, 1.),
                                    ('sum', 0.4, -1.)):
        scores = torch.full((2, 5), 0.01, requires_grad=True)
        seed_sparsity_loss([scores], valid, reduction, target).backward()
        assert (torch.sign(scores.grad) == sign).all(), (reduction, target)
    # and at its target it is at rest
    scores = torch.full((2, 5), 0.6, requires_grad=True)
    loss = seed_sparsity_loss([scores], valid, target_ratio=0.4)
    loss.backward()
    assert float(loss) == pytest.approx(0) and scores.grad.abs().max() < 1e-6


@pytest.mark.parametrize('substitution',
                         ['hard', 'straight_through', 'soft_gate'])
def test_inactive_fusion_takes_nothing_from_the_image(substitution):
    torch.manual_seed(0)
    fusion = SeedKeyFusion(1, 16, 8, threshold=1.0, substitution=substitution)
    keys = torch.randn(2, 10, 16)
    valid = torch.rand(2, 10) > 0.3
    fusion.active = False
    fused, scores = fusion(0, keys, torch.randn(2, 10, 8), valid)
    expected = torch.where(valid[..., None], keys * scores[..., None], keys)
    assert torch.equal(fused, expected)


def test_detector_variant_keys_and_errors(tiny_fusion_cfg, synthetic_batch):
    cfg = copy.deepcopy(tiny_fusion_cfg)
    cfg['fusion']['substitution'] = 'soft_gate'
    cfg.update(sparsity_reduction='mean', sparsity_weight=0.5)
    model = build_detector(cfg)
    assert model.seed_fusion.substitution == 'soft_gate'
    model.train()
    losses = run(model, synthetic_batch, 'loss')
    assert 0 < float(losses['loss_sparsity']) < 0.5  # 0.5 * a mean score
    assert 'decoder1/image_share' in model.fusion_stats
    # during a warm-up: no sparsity term, nothing replaced
    model.seed_fusion.active = False
    losses = run(model, synthetic_batch, 'loss')
    assert 'loss_sparsity' not in losses
    assert float(model.fusion_stats['decoder0/replaced']) == 0
    for key, value, error in (('sparsity_reduction', 'max', ValueError),
                              ('sparsity_target_ratio', 1.5, ValueError)):
        bad = copy.deepcopy(tiny_fusion_cfg)
        bad[key] = value
        with pytest.raises(error, match=key):
            build_detector(bad)


def test_tensor_mode_needs_the_samples(tiny_fusion_cfg, synthetic_batch):
    model = build_detector(tiny_fusion_cfg)
    model.eval()
    data = model.data_preprocessor(copy.deepcopy(synthetic_batch))
    with pytest.raises(ValueError, match='data_samples'):
        model(data['inputs'], None, mode='tensor')
    with torch.no_grad():
        outputs = model(**data, mode='tensor')
    assert outputs['s1.center'].shape[:2] == (2, 64)  # 64 proposals
    # the partial that FLOPs counters wrap the model in
    forward = functools.partial(
        model.forward, data_samples=data['data_samples'], mode='tensor')
    with torch.no_grad():
        again = forward(data['inputs'])
    assert torch.equal(again['s1.center'], outputs['s1.center'])


# --------------------------------------------------------------- schedules
def test_schedule_hook_with_an_iteration_based_loop(tmp_path):
    """The 2D loss goes off and the fusion comes on at epoch boundaries
    counted in iterations (2 samples, batch 1: 2 iterations per epoch)."""
    from mmengine.hooks import Hook
    from mmengine.runner import Runner
    cfg = Config.fromfile(SYNTHETIC_FUSION)
    cfg.train_dataloader.dataset.update(
        data_root=str(tmp_path / 'data'), num_train=2, num_val=1)
    cfg.train_dataloader.update(
        batch_size=1, num_workers=0, persistent_workers=False)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=6)
    cfg.param_scheduler = []
    cfg.custom_hooks = [
        dict(
            type='TokenFusion3DHook',
            img_loss_epochs=2,
            fusion_warmup_epochs=1)
    ]
    seen = []

    class Record(Hook):
        priority = 'LOWEST'

        def after_train_iter(self,
                             runner,
                             batch_idx,
                             data_batch=None,
                             outputs=None):
            seen.append(('img_loss_cls' in outputs, 'loss_sparsity'
                         in outputs, runner.model.seed_fusion.active))

    for key in ('val_dataloader', 'val_cfg', 'val_evaluator',
                'test_dataloader', 'test_cfg', 'test_evaluator'):
        cfg.pop(key, None)
    cfg.default_hooks.checkpoint = None
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        runner = Runner.from_cfg(
            Config(dict(cfg.to_dict(), work_dir=str(tmp_path / 'work'))))
        runner.register_hook(Record())
        runner.train()
    assert seen == [(True, False, False)] * 2 + [(True, True, True)] * 2 + \
        [(False, True, True)] * 2


def test_schedule_hook_rejects_other_models_and_bad_values():
    with pytest.raises(ValueError, match='fusion_warmup_epochs'):
        TokenFusion3DHook(fusion_warmup_epochs=-1)

    class Runner:
        model = torch.nn.Linear(1, 1)

    with pytest.raises(TypeError, match='Linear'):
        TokenFusion3DHook().before_train(Runner())


# ------------------------------------------------------ pipeline start-up
FUSION_CONFIGS = [
    SYNTHETIC_FUSION,
    SYNTHETIC_FUSION.replace('tiny_vit-4x64_1xb8-24e_synthetic-3d',
                             'L6-O256_yolos-ti_4xb8-600e_sunrgbd-3d'),
    SYNTHETIC_FUSION.replace(
        'tiny_vit-4x64_1xb8-24e_synthetic-3d',
        'w2x-L12-O512_yolos-s_4xb8-80e_scannet-3d-10view'),
]


@pytest.mark.parametrize('config', FUSION_CONFIGS)
def test_fusion_configs_pipelines_are_known_to_the_projection(config):
    from projects.multimodal_det3d.models.fusion_layers.projection import \
        check_projection_pipeline
    cfg = Config.fromfile(config)
    hooks = [hook['type'] for hook in cfg.custom_hooks]
    assert 'TokenFusion3DHook' in hooks and 'FusionStatsHook' in hooks
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = cfg[key]['dataset']
        while 'pipeline' not in dataset:
            dataset = dataset['dataset']
        check_projection_pipeline(dataset['pipeline'], key)


def test_unknown_transform_in_the_pipeline_fails_at_start_up(tmp_path):
    from mmengine.runner import Runner
    cfg = Config.fromfile(SYNTHETIC_FUSION)
    cfg.train_dataloader.dataset.update(
        data_root=str(tmp_path / 'data'), num_train=2, num_val=1)
    pipeline = cfg.train_dataloader.dataset.pipeline
    # a crop that records no offset would move every pixel without a word
    pipeline.insert(5, dict(type='mmdet.RandomCrop', crop_size=(96, 96)))
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        runner = Runner.from_cfg(
            Config(dict(cfg.to_dict(), work_dir=str(tmp_path / 'work'))))
        with pytest.raises(
                ValueError,
                match=r"train_dataloader\.dataset\.pipeline\[5\] "
                r"is 'mmdet\.RandomCrop'"):
            runner.train()
    assert runner.iter == 0


def test_seed_scorers_take_their_own_lr_multiplier(tiny_fusion_cfg):
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(SYNTHETIC_FUSION)
    optim = copy.deepcopy(cfg.optim_wrapper)
    optim['paramwise_cfg']['custom_keys']['seed_scorers'] = dict(lr_mult=10.)
    model = build_detector(tiny_fusion_cfg)
    wrapper = build_optim_wrapper(model, optim)
    base = optim['optimizer']['lr']
    scorer_params = {
        id(p)
        for p in model.seed_fusion.seed_scorers.parameters()
    }
    seen = 0
    for group in wrapper.optimizer.param_groups:
        if id(group['params'][0]) in scorer_params:
            assert group['lr'] == pytest.approx(10 * base)
            seen += 1
        elif group['params'][0] is model.seed_fusion.img_to_point[0][0].weight:
            assert group['lr'] == pytest.approx(base)  # the 'img' group
    assert seen == len(scorer_params)
