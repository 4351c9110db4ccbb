"""The MCTF configs build the models they describe: DeiT-T / S with MCTF
or MCTF-Fast trained with the token-reduction consistency, ToMe off the
shelf; token counts and GFLOPs as the paper reports. The demo's configs:
a plain ViT whose checkpoint the MCTF and ToMe configs load unchanged."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

from ..utils import REPO_ROOT

CONFIGS = sorted(glob.glob(osp.join(REPO_ROOT, 'configs/mctf/*_in1k.py')))
# final token count of each config's backbone at 224 x 224
FINAL_TOKENS = {'mctf-fast': 56, 'mctf': 21, 'tome': 197 - 12 * 13}


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_mctf_configs_build(path):
    name = osp.basename(path)
    cfg = Config.fromfile(path)
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    backbone = model.backbone
    assert backbone.token_counts()[-1] == FINAL_TOKENS[name.split('_')[0]]
    small = 'deit-small' in name
    assert backbone.embed_dims == (384 if small else 192)
    assert type(model).__name__ == 'TokenReductionConsistencyClassifier'
    if name.startswith('tome'):
        assert backbone.metric == 'keys'
        assert not backbone.criteria.bidirectional
        assert backbone.placement == 'after_attention'
        assert model.r_teacher_max == 0  # plain fine-tuning
        return
    assert model.consistency_weight == (3. if small else 1.)
    assert model.confidence == 0.4
    assert cfg.optim_wrapper.optimizer.lr == 3e-5
    assert cfg.train_cfg.max_epochs == 40
    assert cfg.train_dataloader.batch_size == 128
    assert 'augments' not in (cfg.model.get('train_cfg') or {})


DEMO = osp.join(REPO_ROOT, 'configs/mctf/{}1xb64-{}_synthetic-shapes-32x32.py')


def build(path):
    cfg = Config.fromfile(path)
    init_default_scope(cfg.default_scope)
    return cfg, MODELS.build(cfg.model)


def test_demo_configs_merge_a_plain_vits_checkpoint():
    assert len(glob.glob(DEMO.format('*', '*'))) == 3
    plain_cfg, plain = build(DEMO.format('vit-tiny-p4_', '2k'))
    assert plain_cfg.model.backbone.type == 'VisionTransformer'
    assert plain_cfg.train_cfg.max_iters == 2000
    mctf_cfg, mctf = build(DEMO.format('mctf_vit-tiny-p4_', '500'))
    tome_cfg, tome = build(DEMO.format('tome_vit-tiny-p4_', '500'))
    keys = set(plain.state_dict())
    for cfg, model in ((mctf_cfg, mctf), (tome_cfg, tome)):
        # no new parameter: the plain checkpoint loads exactly
        assert set(model.state_dict()) == keys
        assert cfg.train_cfg.max_iters == 500
        assert cfg.load_from == 'work_dirs/demo_mctf/vit/iter_2000.pth'
    # MCTF: r = 6 in layers 1-5; ToMe: r = 6 in all 6 layers
    assert mctf.backbone.token_counts() == [65, 65, 59, 53, 47, 41, 35]
    assert tome.backbone.token_counts() == [65, 59, 53, 47, 41, 35, 29]
    assert mctf.backbone.placement == 'one_step_ahead'
    assert mctf.backbone.criteria.bidirectional
    assert (mctf.r_teacher_max, mctf.consistency_weight,
            mctf.confidence) == (6, 1., 0.4)
    assert tome.backbone.metric == 'keys'
    assert tome.backbone.placement == 'after_attention'
    assert tome.r_teacher_max == 0
