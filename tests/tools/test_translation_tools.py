"""tools/train.py and tools/test.py drive the translation GAN: both
networks train in one run, a run resumes from its checkpoint with both
optimizers, and the test tool reports every output's metrics."""
import os
import os.path as osp
import re
import sys

import cv2
import numpy as np
import torch

from ..utils import REPO_ROOT, synthetic_data_options, tool

CONFIG = osp.join(
    REPO_ROOT, 'configs/tokenfusion_translation/'
    'tokenfusion-translation_mit-tiny_1xb4-1k_synthetic-shade-texture2rgb-'
    '64x64.py')
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')


def options(data_root, iters):
    return [
        f'train_cfg.max_iters={iters}', 'train_cfg.val_interval=1000',
        'default_hooks.checkpoint.interval=2',
        'default_hooks.logger.interval=1', 'train_dataloader.batch_size=2'
    ] + synthetic_data_options(
        data_root, num_train=8, num_test=4)


def train(tmp_path, iters, *extra):
    return tool(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools/train.py'), CONFIG, '--work-dir',
            str(tmp_path / 'work')
        ] + list(extra) + ['--cfg-options'] +
        options(tmp_path / 'data', iters),
        cwd=tmp_path,
        env=ENV)


def test_train_resume_and_test(tmp_path):
    train(tmp_path, 2)
    first = torch.load(tmp_path / 'work' / 'iter_2.pth', weights_only=False)
    assert set(first['optimizer']) == {'generator', 'discriminator'}
    # the checkpoint records what the data were
    assert first['meta']['dataset_meta']['sources'] == ('reshading',
                                                        'edge_texture')

    log = train(tmp_path, 4, '--resume')
    assert re.search(r'resumed epoch: 0, iter: 2', log), log[-3000:]
    assert 'Iter(train) [3/4]' in log and 'Iter(train) [1/4]' not in log
    second = torch.load(tmp_path / 'work' / 'iter_4.pth', weights_only=False)
    # both networks and both optimizers moved on from the resumed state
    for net in ('generator', 'discriminator'):
        keys = [
            k for k in first['state_dict']
            if k.startswith(net + '.') and 'weight' in k
        ]
        assert any(
            not torch.equal(first['state_dict'][k], second['state_dict'][k])
            for k in keys)
        steps = [s['step'] for s in second['optimizer'][net]['state'].values()]
        assert {int(s) for s in steps} == {4}, net

    metrics = tmp_path / 'metrics.json'
    log = tool(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools/test.py'), CONFIG,
            str(tmp_path / 'work' / 'iter_4.pth'), '--work-dir',
            str(tmp_path / 'test'), '--metrics-json',
            str(metrics), '--cfg-options'
        ] + options(tmp_path / 'data', 4),
        cwd=tmp_path,
        env=ENV)
    assert 'Translation metrics over 4 images' in log
    for output in ('reshading', 'edge_texture', 'ensemble'):
        assert f'translation/{output}_psnr' in metrics.read_text()


def test_translation_grid(tmp_path):
    """Figure 3's layout: both sources | each model's image | target, a
    row per sample; the panels are the images the models predict."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS

    import projects.multimodal_translation  # noqa: F401
    from projects.multimodal_translation.visualization import to_uint8
    from tools.analysis_tools import model_panels, translation_grid
    single = CONFIG.replace('tokenfusion-translation_', 'translation-single_')
    single = single.replace('shade-texture2rgb', 'shade2rgb')
    specs = []
    for name, config in (('one', single), ('fused', CONFIG)):
        with DefaultScope.overwrite_default_scope('mmseg'):
            model = MODELS.build(Config.fromfile(config).model)
        path = tmp_path / f'{name}.pth'
        torch.save({'state_dict': model.state_dict()}, path)
        specs.append(f'{name}={config}:{path}')
    data = {
        'test_dataloader.dataset.data_root': str(tmp_path / 'data'),
        'test_dataloader.dataset.num_train': 8,
        'test_dataloader.dataset.num_test': 4
    }
    out = str(tmp_path / 'grid.png')
    translation_grid.main(
        specs +
        ['--index', '0', '--index', '2', '--out', out, '--cfg-options'] +
        [f'{k}={v}' for k, v in data.items()])
    picture = cv2.imread(out)[..., ::-1]
    scale, gap, header = 2, model_panels.GAP, model_panels.HEADER
    panel = 64 * scale
    assert picture.shape == (header + 2 * (panel + gap),
                             5 * (panel + gap) + gap, 3)
    config, checkpoint = specs[1].split('=', 1)[1].rsplit(':', 1)
    _, outputs = translation_grid.model_outputs(config, checkpoint, [2], data)
    y, x = header + panel + gap, gap + 3 * (panel + gap)
    expected = to_uint8(outputs[0])
    np.testing.assert_array_equal(
        picture[y:y + panel:scale, x:x + panel:scale], expected)
