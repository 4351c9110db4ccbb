"""tools/analysis_tools/visualize_token_exchange.py: the exchanged-token
maps of TokenFusion (the paper's Figure 4) on the demo model."""
import glob
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from ..utils import REPO_ROOT, random_seg_checkpoint, synthetic_data_options

DEMO = osp.join(
    REPO_ROOT, 'configs/tokenfusion/'
    'tokenfusion_mit-tiny_1xb8-1k_synthetic-rgbd-64x64.py')


def test_exchange_maps_upsampling_and_overlay():
    from projects.multimodal_seg.visualization.token_exchange_maps import (
        default_layers, exchange_maps, overlay_exchange, upsample_token_map)
    theta = 0.3
    # 2 modalities on a 2x3 token grid; a score equal to θ is kept
    scores = torch.tensor([[0.1, 0.3, 0.9, 0.29, 0.5, 0.0],
                           [0.6, 0.2, 0.3, 0.31, 0.05, 0.7]])
    maps = exchange_maps(scores, theta, (2, 3))
    assert maps.shape == (2, 2, 3)
    # rgb takes from depth (1), depth from rgb (0), -1 = kept
    assert maps[0].tolist() == [[1, -1, -1], [1, -1, 1]]
    assert maps[1].tolist() == [[-1, 0, -1], [-1, 0, -1]]
    with pytest.raises(ValueError):
        exchange_maps(scores, theta, (3, 3))

    # M = 3: the source comes from the allocation
    allocation = torch.tensor([[1, 2, 1, 2], [0, 0, 2, 2], [1, 0, 0, 1]])
    scores3 = torch.tensor([[0.1, 0.1, 0.5, 0.1], [0.5, 0.1, 0.1, 0.5],
                            [0.1, 0.5, 0.5, 0.5]])
    maps3 = exchange_maps(scores3, theta, (2, 2), allocation)
    assert maps3.tolist() == [[[1, 2], [-1, 2]], [[-1, 0], [2, -1]],
                              [[1, -1], [-1, -1]]]
    with pytest.raises(ValueError):
        exchange_maps(scores3, theta, (2, 2))

    # each 4x4 token cell of a 2x3 grid covers 4x4 pixels of an 8x12 image
    pixels = upsample_token_map(maps, (8, 12))
    assert pixels.shape == (2, 8, 12)
    for i in range(2):
        for j in range(3):
            cell = pixels[:, 4 * i:4 * i + 4, 4 * j:4 * j + 4]
            assert (cell == maps[:, i, j, None, None]).all()
    # not divisible: pixel (y, x) shows token (y * 2 // 5, x * 3 // 7)
    odd = upsample_token_map(maps[0], (5, 7))
    assert odd[:, 0].tolist() == [1, 1, 1, 1, 1]
    assert odd[0].tolist() == [1, 1, 1, -1, -1, -1, -1]
    assert odd[3].tolist() == [1, 1, 1, -1, -1, 1, 1]

    image = np.full((8, 12, 3), 100, np.uint8)
    colours = [(0, 0, 250), (250, 0, 0)]
    out = overlay_exchange(image, pixels[0], colours, alpha=0.5)
    marked = pixels[0] >= 0
    assert (out[~marked] == 100).all()
    # rgb's exchanged tokens (from depth = 1) in depth's colour
    assert (out[marked] == [175, 50, 50]).all()
    assert marked.sum() == 3 * 16
    out_depth = overlay_exchange(image, pixels[1], colours, alpha=0.5)
    assert (out_depth[pixels[1] == 0] == [50, 50, 175]).all()
    assert (out_depth[pixels[1] < 0] == 100).all()
    assert (image == 100).all()  # not modified in place

    assert default_layers(
        ['block1.0', 'block1.1', 'block2.0', 'block3.2',
         'block3.5']) == ['block1.1', 'block2.0', 'block3.5']


@pytest.fixture
def random_checkpoint(tmp_path):
    path = tmp_path / 'random.pth'
    random_seg_checkpoint(DEMO, path)
    return path


def test_visualize_token_exchange_cli(tmp_path, random_checkpoint, capsys):
    from projects.multimodal_seg.datasets.transforms.loading import read_depth
    from projects.multimodal_seg.visualization.multimodal_visualizer import \
        colourize_depth
    from projects.multimodal_seg.visualization.token_exchange_maps import (
        FigureLayout, overlay_exchange)
    from tools.analysis_tools import visualize_token_exchange
    data_root = tmp_path / 'synthetic'
    script = osp.join(REPO_ROOT,
                      'tools/analysis_tools/visualize_token_exchange.py')

    def args(theta):
        return [
            DEMO,
            str(random_checkpoint), '--scale', '2', '--out-dir',
            str(tmp_path / f'vis_{theta}')
        ] + {
            # every token exchanged, the default layers (last of each stage)
            1.0: ['--index', '0', '--index', '1'],
            # none exchanged, two chosen layers
            0.0: ['--index', '1', '--layers', 'block2.0', 'block4.0'],
        }[theta] + [
            '--cfg-options', f'model.backbone.fusion.threshold={theta}'
        ] + synthetic_data_options(data_root)

    # θ = 1 as a command, θ = 0 meanwhile in this process (the data set
    # generation is safe against a concurrent one)
    proc = subprocess.Popen(
        [sys.executable, script] + args(1.0),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True)
    outputs = {}
    try:
        paths = visualize_token_exchange.main(args(0.0))
        outputs[0.0] = capsys.readouterr().out
    finally:
        outputs[1.0] = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, outputs[1.0][-4000:]
    assert paths == [str(tmp_path / 'vis_0.0' / 'test_0001_00009.png')]

    def raw_images(png):
        name = osp.basename(png).split('_')[-1]
        rgb = cv2.imread(str(data_root / 'rgb' / name))[..., ::-1]
        depth = colourize_depth(read_depth(str(data_root / 'depth' / name)))
        return [rgb, depth]

    def panels(png, rows):
        figure = cv2.imread(png)[..., ::-1]
        layout = FigureLayout(rows, 2, (128, 128))
        assert figure.shape[:2] == layout.size
        for row in range(rows):
            for col in range(2):
                y0, x0, y1, x1 = layout.panel_box(row, col)
                # undo the 2x upscaling, checking it was nearest
                panel = figure[y0:y1, x0:x1]
                assert (panel[0::2, 0::2] == panel[1::2, 1::2]).all()
                yield row, col, panel[0::2, 0::2]

    everything = sorted(glob.glob(str(tmp_path / 'vis_1.0' / '*.png')))
    assert [osp.basename(p)[:9]
            for p in everything] == ['test_0000', 'test_0001']
    for png in everything:
        assert png in outputs[1.0]
        images = raw_images(png)
        for row, col, panel in panels(png, rows=4):
            source = np.full((64, 64), 1 - col)  # rgb <- depth, depth <- rgb
            assert (panel == overlay_exchange(images[col], source)).all()
            assert (panel != images[col]).any(axis=2).mean() > 0.9
    assert outputs[1.0].count('exchanged  rgb: 1.0000  depth: 1.0000') == 8
    for layer in ('block1.0', 'block2.0', 'block3.0', 'block4.0'):
        assert f'  {layer} exchanged' in outputs[1.0]

    nothing = glob.glob(str(tmp_path / 'vis_0.0' / '*.png'))
    assert outputs[0.0].count('exchanged  rgb: 0.0000  depth: 0.0000') == 2
    assert len(nothing) == 1 and osp.basename(
        nothing[0]).startswith('test_0001')
    images = raw_images(nothing[0])
    count = 0
    for row, col, panel in panels(nothing[0], rows=2):
        assert (panel == images[col]).all()  # no highlight
        count += 1
    assert count == 4


def test_visualize_token_exchange_of_a_translation_generator(tmp_path):
    """The same figure for the generator's encoder of a translation model:
    the panels are its sources as it sees them, highlighted where the
    source took the other's tokens (θ = 1: everywhere, θ = 0: nowhere)."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmseg.registry import DATASETS, MODELS

    from projects.multimodal_seg.visualization.token_exchange_maps import (
        FigureLayout, overlay_exchange)
    from projects.multimodal_translation.visualization import source_images
    from tools.analysis_tools import visualize_token_exchange
    config = osp.join(
        REPO_ROOT, 'configs/tokenfusion_translation/tokenfusion-translation_'
        'mit-tiny_1xb4-1k_synthetic-shade-texture2rgb-64x64.py')
    cfg = Config.fromfile(config)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    checkpoint = tmp_path / 'random.pth'
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    data_root = tmp_path / 'data'
    options = synthetic_data_options(data_root)
    for theta in (1.0, 0.0):
        paths = visualize_token_exchange.main([
            config,
            str(checkpoint), '--index', '1', '--scale', '2', '--out-dir',
            str(tmp_path / f'vis_{theta}'), '--cfg-options',
            f'model.generator.fusion.threshold={theta}'
        ] + options)
        assert [osp.basename(p) for p in paths] == \
            ['test_0001_synthetic_point_9_view_0.png']
        dataset = dict(
            cfg.test_dataloader.dataset,
            data_root=str(data_root),
            num_train=8,
            num_test=2)
        with DefaultScope.overwrite_default_scope('mmseg'):
            sample = DATASETS.build(dataset)[1]
        images = source_images(sample['inputs'], 2)
        figure = cv2.imread(paths[0])[..., ::-1]
        layout = FigureLayout(5, 2, (128, 128))  # last block of 5 stages
        assert figure.shape[:2] == layout.size
        for row in range(5):
            for col in range(2):
                y0, x0, y1, x1 = layout.panel_box(row, col)
                panel = figure[y0:y1:2, x0:x1:2]
                if theta:  # shade <- texture (1), texture <- shade (0)
                    expected = overlay_exchange(images[col],
                                                np.full((64, 64), 1 - col))
                else:
                    expected = images[col]
                np.testing.assert_array_equal(panel, expected)
    # blocks that do not fuse are named in the error, with the fused ones
    with pytest.raises(ValueError, match=r"\['block1.1'\]: choose fused"):
        visualize_token_exchange.main([
            config,
            str(checkpoint), '--index', '0', '--layers', 'block1.1',
            '--out-dir',
            str(tmp_path / 'bad'), '--cfg-options'
        ] + options)
