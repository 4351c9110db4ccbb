"""Every config parses, its pipelines build, its model builds, and the
modalities of data and model agree."""
import glob
import os.path as osp

import pytest
from mmcv.transforms import Compose
from mmengine.config import Config
from mmseg.registry import MODELS

from .conftest import REPO_ROOT

CONFIGS = sorted(glob.glob(osp.join(REPO_ROOT, 'configs', '*', '*.py')))
CONFIGS = [c for c in CONFIGS if '/_base_/' not in c]


def test_configs_found():
    assert len(CONFIGS) >= 9


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_builds(path):
    cfg = Config.fromfile(path)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = cfg[loader]['dataset']
        Compose(dataset['pipeline'])
        assert tuple(dataset['modalities']) == tuple(
            cfg.model.data_preprocessor.modalities), loader
    if 'tta_pipeline' in cfg:
        Compose(cfg.tta_pipeline)
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    preprocessor = model.data_preprocessor
    streams = getattr(model.backbone, 'num_modalities', 1)
    assert sum(preprocessor.out_channels) == \
        streams * cfg.model.backbone.in_channels
    if streams > 1:  # one stream per modality, each of in_channels
        assert set(
            preprocessor.out_channels) == {cfg.model.backbone.in_channels}
        assert len(preprocessor.modalities) == streams
