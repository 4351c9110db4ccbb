"""Inference speed of TokenFusion for 3D detection against points-only
GroupFree3D: seconds per 100 scenes.

Pairs (the real configs; weights random, data synthetic of the real
shapes, no dataset needed):

* ``scannet``: mmdet3d's GroupFree3D w2x L12-O512 (50k points) alone
  (0 frames) and fused with YOLOS-S on 5 and 10 posed 320x240 views (paper
  Table 10: +49 % for 10 frames);
* ``sunrgbd``: GroupFree3D L6-O256 (20k points) alone and fused with
  YOLOS-Ti on the 730x530 image;
* ``table10``: the paper's Table 10 configuration, mmdet3d's ScanNet
  GroupFree3D L6-O256 (PointNet++ w1x, 50k points) alone and fused with
  YOLOS-Ti (two ViT blocks per decoder layer) on 5 and 10 posed views
  (paper, V100: 4.7 / 5.9 / 7.0 s per 100 scenes). Built from our 5 / 10
  view configs with the L6-O256 point model and YOLOS-Ti swapped in.

``--merge-r R [R ...]`` adds, for every fused model, the same model with
token merging in its ViT (``img_backbone.token_merge=dict(r=R)``: a
fraction R of the patch tokens merged in every block but the first).

Every model runs ``predict`` at batch 1 (``torch.no_grad``, eval mode) on
the same scenes: points spread over a 6 x 6 x 3 m room, views from cameras
at its centre looking outwards (every seed lies in some view), random
pixels. Reported: the median seconds per scene x 100 and the ratio to the
points-only model of the pair, all models of a pair measured in one process
and alternated scene by scene, so that slow drifts of the machine's load
hit all of them.

    python tools/analysis_tools/benchmark_3d.py --pairs scannet sunrgbd \
        --scenes 10 [--device cuda]
"""
import argparse
import math
import os.path as osp
import platform
import statistics
import sys
from typing import Sequence

import mmdet3d
import numpy as np
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from mmdet3d.structures import DepthInstance3DBoxes, Det3DDataSample
from mmengine.config import Config
from mmengine.registry import DefaultScope

import projects.multimodal_det3d  # noqa: F401
from tools.analysis_tools.benchmarking.timing import time_fn

SCANNET_GF = ('mmdet3d::groupfree3d/'
              'groupfree3d_w2x-head-L12-O512_4xb8_scannet-seg.py')
SCANNET_TF = ('configs/tokenfusion3d/tokenfusion3d_groupfree3d-w2x-'
              'L12-O512_yolos-s_4xb8-80e_scannet-3d-{}view.py')
SCANNET_L6 = ('mmdet3d::groupfree3d/'
              'groupfree3d_head-L6-O256_4xb8_scannet-seg.py')
# the Table 10 fusion model: our ScanNet config with the L6-O256 point model
# and YOLOS-Ti (no mid-layer position embeddings, 12 blocks for 6 layers)
TABLE10 = 'table10:' + SCANNET_TF
PAIRS = {
    'scannet': [
        ('points only (0 frames)', SCANNET_GF, 0, 50000),
        ('+ image, 5 frames', SCANNET_TF.format(5), 5, 50000),
        ('+ image, 10 frames', SCANNET_TF.format(10), 10, 50000),
    ],
    'sunrgbd': [
        ('points only', 'configs/groupfree3d/'
         'groupfree3d_head-L6-O256_4xb8-600e_sunrgbd-3d.py', 0, 20000),
        ('+ image (YOLOS-Ti)', 'configs/tokenfusion3d/tokenfusion3d_'
         'groupfree3d-L6-O256_yolos-ti_4xb8-600e_sunrgbd-3d.py', 1, 20000),
    ],
    'table10': [
        ('points only (0 frames)', SCANNET_L6, 0, 50000),
        ('+ image, 5 frames', TABLE10.format(5), 5, 50000),
        ('+ image, 10 frames', TABLE10.format(10), 10, 50000),
    ],
}
SCANNET_LAYOUT = ('scannet', 'table10')  # posed views
VIEW_SIZE = (240, 320)  # H, W of a ScanNet view in the fusion configs
SUN_SIZE = (530, 730)


def config_path(config: str) -> str:
    if config.startswith('mmdet3d::'):  # a config shipped with mmdet3d
        return osp.join(
            osp.dirname(mmdet3d.__file__), '.mim', 'configs',
            config[len('mmdet3d::'):])
    return osp.join(REPO_ROOT, config)


def table10_model(fused: Config) -> None:
    """Turn our ScanNet fusion model into the paper's Table 10 one."""
    points = Config.fromfile(config_path(SCANNET_L6)).model
    fused.model.backbone = points.backbone
    fused.model.bbox_head = dict(
        points.bbox_head, type='TokenFusionGroupFree3DHead')
    fused.model.img_backbone.update(arch='tiny', mid_pe=False)
    fused.model.img_bbox_head.embed_dims = 192
    fused.model.fusion.blocks_per_layer = 2


def build_model(config: str, device: str, merge_r: float = 0):
    table10 = config.startswith('table10:')
    cfg = Config.fromfile(
        config_path(config[len('table10:'):] if table10 else config))
    if table10:
        table10_model(cfg)
    if 'img_backbone' in cfg.model:
        cfg.model.img_backbone.init_cfg = None  # random weights suffice
        if merge_r:
            cfg.model.img_backbone.token_merge = dict(r=merge_r)
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        from mmdet3d.registry import MODELS
        model = MODELS.build(cfg.model)
    return model.to(device).eval()


def outward_cameras(num_views: int, size, height: float = 1.5):
    """(V, 4, 4) lidar2img of cameras at the room centre, yawed evenly."""
    h, w = size
    focal = 0.9 * w
    intrinsic = np.array([[focal, 0, w / 2, 0], [0, focal, h / 2, 0],
                          [0, 0, 1, 0], [0, 0, 0, 1]])
    mats = []
    for v in range(num_views):
        yaw = 2 * math.pi * v / num_views
        forward = np.array([math.cos(yaw), math.sin(yaw), 0.])
        right = np.array([math.sin(yaw), -math.cos(yaw), 0.])
        down = np.array([0., 0., -1.])
        world_to_cam = np.eye(4)
        world_to_cam[:3, :3] = np.stack([right, down, forward])
        world_to_cam[:3,
                     3] = -world_to_cam[:3, :3] @ np.array([0., 0., height])
        mats.append(intrinsic @ world_to_cam)
    return np.stack(mats).astype(np.float32)


def make_scene(rng, num_points: int, num_views: int, kind: str, device):
    """Inputs of ``model.predict`` for one synthetic scene."""
    xyz = rng.uniform([-3, -3, 0], [3, 3, 3], (num_points, 3))
    points = torch.from_numpy(xyz.astype(np.float32)).to(device)
    # the augmentation records a test pipeline writes: nothing applied
    meta = dict(
        box_type_3d=DepthInstance3DBoxes,
        sample_idx=0,
        transformation_3d_flow=[],
        scale_factor=(1., 1.),
        flip=False)
    inputs = dict(points=[points])
    if num_views and kind in SCANNET_LAYOUT:
        h, w = VIEW_SIZE
        meta.update(
            lidar2img=outward_cameras(num_views, VIEW_SIZE),
            img_shape=(h, w),
            num_views=num_views)
        inputs['imgs'] = torch.randn(1, num_views, 3, h, w, device=device)
    elif num_views:
        h, w = SUN_SIZE
        # A SUN RGB-D style camera looking along +y (1-based pixels).
        k = np.array([[529.5, 0, 365.], [0, 529.5, 265.], [0, 0, 1]])
        depth2img = k @ np.array([[1., 0, 0], [0, 0, -1], [0, 1, 0]])
        meta.update(depth2img=depth2img.astype(np.float32), img_shape=(h, w))
        pad_h, pad_w = 16 * math.ceil(h / 16), 16 * math.ceil(w / 16)
        inputs['imgs'] = torch.randn(1, 3, pad_h, pad_w, device=device)
        inputs['points'] = [points + points.new_tensor([0., 3.5, -1.5])]
    return inputs, [Det3DDataSample(metainfo=meta)]


def entries_of(kind: str, merge_r: Sequence[float]):
    """(name, config, views, points, merge r) of every model of a pair."""
    entries = []
    for name, config, views, points in PAIRS[kind]:
        entries.append((name, config, views, points, 0))
        if views:
            entries.extend(
                (f'{name}, merged r={r:g}', config, views, points, r)
                for r in merge_r)
    return entries


def benchmark_pair(kind: str,
                   scenes: int,
                   warmup: int,
                   device: str,
                   merge_r: Sequence[float] = ()):
    entries = entries_of(kind, merge_r)
    models = [build_model(cfg, device, r) for _, cfg, _, _, r in entries]
    rng = np.random.default_rng(0)
    times = [[] for _ in entries]
    for scene in range(warmup + scenes):
        for i, (_, _, views, num_points, _) in enumerate(entries):
            inputs, samples = make_scene(rng, num_points, views, kind, device)

            def step(model=models[i], inputs=inputs, samples=samples):
                with torch.no_grad():
                    model.predict(inputs, samples)

            measured = time_fn(step, 0, 1, device)['wall'][0]
            if scene >= warmup:
                times[i].append(measured)
    rows = []
    base = statistics.median(times[0])
    for (name, _, views, _, _), values in zip(entries, times):
        median = statistics.median(values)
        rows.append((name, views, 100 * median, median / base))
    return rows


def format_rows(kind: str, rows, device: str) -> str:
    lines = [
        f'{kind} ({device}): seconds per 100 scenes, batch 1',
        '| model | frames | s / 100 scenes | vs points only |',
        '|---|---|---|---|'
    ]
    for name, views, seconds, ratio in rows:
        lines.append(f'| {name} | {views} | {seconds:.1f} | '
                     f'{ratio:.2f}x ({100 * (ratio - 1):+.0f} %) |')
    return '\n'.join(lines)


def machine(device: str) -> str:
    if device.startswith('cuda'):
        return torch.cuda.get_device_name(0)
    return (f'{platform.processor() or platform.machine()}, '
            f'{torch.get_num_threads()} threads')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--pairs',
        nargs='+',
        default=['scannet', 'sunrgbd'],
        choices=sorted(PAIRS))
    parser.add_argument('--scenes', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--merge-r',
        type=float,
        nargs='*',
        default=[],
        help='also time every fused model with this token-merging r')
    parser.add_argument(
        '--threads', type=int, help='torch threads (default: torch\'s)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f'torch {torch.__version__} on {machine(args.device)}')
    tables = []
    for kind in args.pairs:
        rows = benchmark_pair(kind, args.scenes, args.warmup, args.device,
                              args.merge_r)
        tables.append(format_rows(kind, rows, args.device))
        print(tables[-1], flush=True)
    return tables


if __name__ == '__main__':
    main()
