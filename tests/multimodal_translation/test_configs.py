"""The translation configs build: the Taskonomy config into the
reference's networks, datasets and evaluators; the demo's synthetic
configs into the generators they name (TokenFusion, GeminiFusion, no
fusion, early concat, one source), which run a forward pass."""
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
        count = sum(p.numel() for p in model.parameters())
        assert round(count / 1e6, 1) == round(131.1 + 85.3, 1)
        assert cfg.train_dataloader.batch_size == 1
        assert cfg.train_cfg.max_epochs == 300
        assert evaluators[1]['type'] == 'FIDKIDMetric'
        assert cfg.train_dataloader.dataset.target == 'rgb'
        return
    streams = model.generator.num_streams
    x = torch.rand(1, 3 * len(sources), 64, 64) * 2 - 1
    with torch.no_grad():
        images = model.generator(x)
        assert images.shape == (streams, 1, 3, 64, 64)
        judged = model.discriminator(pair_inputs(x, images, streams))
    assert judged.shape == (streams, 1, 1, 2, 2)
