"""The MCTF configs build the models they describe: DeiT-T / S with MCTF
or MCTF-Fast trained with the token-reduction consistency, ToMe off the
shelf; token counts and GFLOPs as the paper reports."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

from ..utils import REPO_ROOT

CONFIGS = sorted(glob.glob(osp.join(REPO_ROOT, 'configs/mctf/*.py')))
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
