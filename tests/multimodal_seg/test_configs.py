"""Every config parses, its pipelines build, its model builds, and the
modalities of data and model agree."""
import glob
import os.path as osp

import pytest
from mmcv.transforms import Compose
from mmengine.config import Config
from mmseg.registry import MODELS

from ..utils import REPO_ROOT


def configs_in(*folders):
    return sorted(
        path for folder in folders
        for path in glob.glob(osp.join(REPO_ROOT, 'configs', folder, '*.py')))


CONFIGS = configs_in('segformer', 'tokenfusion', 'geminifusion')
DET3D_CONFIGS = configs_in('groupfree3d', 'tokenfusion3d')
# built by tests/multimodal_translation/test_configs.py
TRANSLATION_CONFIGS = configs_in('tokenfusion_translation')
# built by tests/mctf/test_configs.py
MCTF_CONFIGS = configs_in('mctf')


def test_configs_found():
    assert len(CONFIGS) >= 9
    assert len(DET3D_CONFIGS) >= 6
    assert len(MCTF_CONFIGS) >= 5
    every = glob.glob(osp.join(REPO_ROOT, 'configs', '*', '*.py'))
    assert {p
            for p in every
            if '/_base_/' not in p} == set(CONFIGS + DET3D_CONFIGS +
                                           TRANSLATION_CONFIGS + MCTF_CONFIGS)


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_builds(path):
    cfg = Config.fromfile(path)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = cfg[loader]['dataset']
        Compose(dataset['pipeline'])
        configured = tuple(
            m if isinstance(m, str) else m['name']
            for m in cfg.model.data_preprocessor.modalities)
        assert tuple(dataset['modalities']) == configured, loader
    if 'tta_pipeline' in cfg:
        Compose(cfg.tta_pipeline)
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    preprocessor = model.data_preprocessor
    modalities = getattr(model.backbone, 'num_modalities', 1)
    assert sum(preprocessor.out_channels) == \
        modalities * cfg.model.backbone.in_channels
    if modalities > 1:  # one input per modality, each of in_channels
        assert set(
            preprocessor.out_channels) == {cfg.model.backbone.in_channels}
        assert len(preprocessor.modalities) == modalities


@pytest.mark.parametrize('path', DET3D_CONFIGS, ids=osp.basename)
def test_det3d_config_builds(path):
    from mmdet3d.registry import MODELS as MODELS3D
    from mmengine.registry import DefaultScope
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmdet3d'
    fusion = cfg.model.type == 'TokenFusionGroupFree3D'
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader'):
            dataset = cfg[loader]['dataset']
            dataset = dataset.get('dataset', dataset)  # RepeatDataset
            Compose(dataset['pipeline'])
            packed = dataset['pipeline'][-1]
            # the fusion model needs the image, the baseline must not load it
            assert ('img' in packed['keys']) == fusion, loader
        if fusion:
            cfg.model.img_backbone.init_cfg = None
        model = MODELS3D.build(cfg.model)
    if fusion:
        divisor = cfg.model.data_preprocessor.pad_size_divisor
        assert divisor % model.img_backbone.patch_size == 0
