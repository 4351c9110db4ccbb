"""The translation configs build: the Taskonomy configs (TokenFusion
Table 1's five tasks at sizes Ti and S, Table 7's 1 to 4 sources) into the
reference's networks, the task's domains and its evaluators; the demo's
synthetic configs into the generators they name (TokenFusion,
GeminiFusion, no fusion, early concat, one source), which run a forward
pass."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmseg.registry import METRICS, MODELS, TRANSFORMS

from projects.multimodal_translation.models import pair_inputs
from ..utils import REPO_ROOT

CONFIGS = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs/tokenfusion_translation/*.py')))

# the domains of every Taskonomy task, by the task part of the config name
TASKONOMY_TASKS = {
    # TokenFusion Table 1
    'shade-texture2rgb': (('reshading', 'edge_texture'), 'rgb'),
    'depth-normal2rgb': (('depth_euclidean', 'normal'), 'rgb'),
    'rgb-shade2normal': (('rgb', 'reshading'), 'normal'),
    'rgb-normal2shade': (('rgb', 'normal'), 'reshading'),
    'rgb-edge2depth': (('rgb', 'edge_occlusion'), 'depth_euclidean'),
    # Table 7: 1, 3 and 4 sources (2 is shade-texture2rgb)
    'texture2rgb': (('edge_texture', ), 'rgb'),
    'depth-shade-texture2rgb':
    (('depth_euclidean', 'reshading', 'edge_texture'), 'rgb'),
    'depth-normal-shade-texture2rgb':
    (('depth_euclidean', 'normal', 'reshading', 'edge_texture'), 'rgb'),
}
# encoder blocks of the paper's sizes
ENCODER_BLOCKS = {'mit-s': 20, 'mit-ti': 10}


def test_every_table1_task_has_ti_and_s_configs():
    names = [osp.basename(path) for path in CONFIGS]
    for task in list(TASKONOMY_TASKS)[:5]:
        for size in ENCODER_BLOCKS:
            assert (f'tokenfusion-translation_{size}_1xb1-300e_taskonomy-'
                    f'{task}-256x256.py') in names


def expected_fusion(name):
    """(fusion layer types, fused blocks: 'last' / 'all' / None) of a
    config by its name."""
    if name.startswith('tokenfusion-'):
        return ['TokenExchange'], 'last'
    if name.startswith('geminifusion-'):
        return ['GeminiFusion'], 'all'
    return [], None


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_translation_configs_build(path):
    name = osp.basename(path)
    cfg = Config.fromfile(path)
    model = MODELS.build(cfg.model)
    sources = tuple(cfg.train_dataloader.dataset.sources)
    concat = name.startswith('translation-concat')
    assert model.stream_names == (('concat', ) if concat else sources)
    if 'taskonomy' not in name:
        assert len(sources) == (1 if 'single' in name else 2)
    encoder = model.generator.encoder
    types, blocks = expected_fusion(name)
    assert [type(layer).__name__ for layer in encoder.fusion_layers] == types
    if blocks == 'last':
        assert encoder.fusion_layers.blocks == [
            (s, d - 1) for s, d in enumerate(encoder.depths)
        ]
        assert encoder.fusion_layers[0].threshold == 0.02
    elif blocks == 'all':
        assert len(encoder.fusion_layers.blocks) == sum(encoder.depths)
    for pipeline in (cfg.train_pipeline, cfg.test_pipeline):
        for step in pipeline:
            TRANSFORMS.build(step)
    evaluators = cfg.val_evaluator
    evaluators = evaluators if isinstance(evaluators, list) else [evaluators]
    assert evaluators[0]['type'] == 'TranslationMetric'
    METRICS.build(evaluators[0])
    adam = cfg.optim_wrapper.generator.optimizer
    assert adam.lr == 2e-4 and tuple(adam.betas) == (0.5, 0.999)
    if 'taskonomy' in name:
        check_taskonomy_config(name, cfg, model, evaluators)
        return
    streams = model.generator.num_streams
    x = torch.rand(1, 3 * len(sources), 64, 64) * 2 - 1
    with torch.no_grad():
        images = model.generator(x)
        assert images.shape == (streams, 1, 3, 64, 64)
        judged = model.discriminator(pair_inputs(x, images, streams))
    assert judged.shape == (streams, 1, 1, 2, 2)


def check_taskonomy_config(name, cfg, model, evaluators):
    size, task = name.split('_')[1], name.split(
        'taskonomy-')[1][:-len('-256x256.py')]
    sources, target = TASKONOMY_TASKS[task]
    for loader in ('train', 'val', 'test'):
        dataset = cfg[f'{loader}_dataloader'].dataset
        assert tuple(dataset.sources) == sources, loader
        assert dataset.target == target, loader
    assert model.generator.num_modalities == len(sources)
    assert model.discriminator.num_streams == len(sources)
    encoder = model.generator.encoder
    assert sum(encoder.depths) == ENCODER_BLOCKS[size]
    assert encoder.dims == [64, 128, 256, 512, 1024]
    if size == 'mit-s' and len(sources) == 2:
        count = sum(p.numel() for p in model.parameters())
        assert round(count / 1e6, 1) == round(131.1 + 85.3, 1)
    assert cfg.train_dataloader.batch_size == 1
    assert cfg.train_cfg.max_epochs == 300
    # FID / KID for RGB targets only (Table 1: MAE / MSE for the others)
    assert [
        e['type'] for e in evaluators
    ] == ['TranslationMetric'] + (['FIDKIDMetric'] if target == 'rgb' else [])
