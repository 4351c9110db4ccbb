"""The translation configs build: the Taskonomy config into the
reference's networks, datasets and evaluators; the synthetic one into the
same structure at 1/4 width."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmseg.registry import METRICS, MODELS, TRANSFORMS

from ..utils import REPO_ROOT

CONFIGS = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs/tokenfusion_translation/*.py')))


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_translation_configs_build(path):
    cfg = Config.fromfile(path)
    model = MODELS.build(cfg.model)
    dataset = cfg.train_dataloader.dataset
    assert model.stream_names == tuple(dataset.sources)
    assert model.generator.num_streams == len(dataset.sources) == 2
    layers = model.generator.encoder.fusion_layers
    assert [type(layer).__name__ for layer in layers] == ['TokenExchange']
    assert layers[0].threshold == 0.02
    assert layers.blocks == [
        (s, d - 1) for s, d in enumerate(model.generator.encoder.depths)
    ]
    for pipeline in (cfg.train_pipeline, cfg.test_pipeline):
        for step in pipeline:
            TRANSFORMS.build(step)
    evaluators = cfg.val_evaluator
    evaluators = evaluators if isinstance(evaluators, list) else [evaluators]
    assert evaluators[0]['type'] == 'TranslationMetric'
    METRICS.build(evaluators[0])
    if 'taskonomy' in path:
        count = sum(p.numel() for p in model.parameters())
        assert round(count / 1e6, 1) == round(131.1 + 85.3, 1)
        assert cfg.train_dataloader.batch_size == 1
        assert cfg.train_cfg.max_epochs == 300
        assert evaluators[1]['type'] == 'FIDKIDMetric'
        assert dataset.target == 'rgb'
    adam = cfg.optim_wrapper.generator.optimizer
    assert adam.lr == 2e-4 and tuple(adam.betas) == (0.5, 0.999)
