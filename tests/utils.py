"""Helpers shared by the test modules (plain functions, imported by name;
pytest fixtures stay in the conftest files)."""
import os.path as osp
import subprocess

import cv2

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# real sample data the tests read (see data/PROVENANCE.md)
DATA_ROOT = osp.join(REPO_ROOT, 'tests', 'data')


def tiny_options(data_root, max_iters):
    """Shrink the demo config: 16 train / 4 test images, batch 2."""
    data = f'data_root={data_root} dataset.num_train=16 dataset.num_test=4'
    options = [
        f'train_cfg.max_iters={max_iters}',
        f'train_cfg.val_interval={max_iters}',
        'default_hooks.checkpoint.interval=2', 'train_dataloader.batch_size=2',
        'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
        'test_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.persistent_workers=False',
        'test_dataloader.persistent_workers=False',
        'default_hooks.logger.interval=1'
    ]
    for loader in ('train', 'val', 'test'):
        options += [
            f'{loader}_dataloader.dataset.{item.replace("dataset.", "")}'
            for item in data.split()
        ]
    return options


def synthetic_data_options(data_root, num_train=8, num_test=2):
    """``--cfg-options`` that point every dataloader of a synthetic demo
    config at ``data_root`` with ``num_train`` / ``num_test`` images, read
    in the main process."""
    options = []
    for loader in ('train', 'val', 'test'):
        options += [
            f'{loader}_dataloader.dataset.data_root={data_root}',
            f'{loader}_dataloader.dataset.num_train={num_train}',
            f'{loader}_dataloader.dataset.num_test={num_test}',
            f'{loader}_dataloader.num_workers=0',
            f'{loader}_dataloader.persistent_workers=False'
        ]
    return options


def modules_loaded_by(package):
    """Names of every module loaded by importing ``package`` in a fresh
    interpreter (so that no test has imported anything before)."""
    import json
    import sys
    probe = ('import json, sys\n'
             f'import {package}\n'
             'print(json.dumps(sorted(sys.modules)))\n')
    proc = subprocess.run([sys.executable, '-c', probe],
                          cwd=REPO_ROOT,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def tool(args, cwd, env=None, timeout=300):
    """Run a repository tool in a subprocess; fail with its output."""
    proc = subprocess.run(
        args,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    return output


def write_canonical_sample(root, name, rgb, depth, label):
    """Write one sample in the canonical layout (rgb given in RGB order)."""
    for sub in ('rgb', 'depth', 'label'):
        (root / sub).mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / 'rgb' / f'{name}.png'), rgb[..., ::-1])
    cv2.imwrite(str(root / 'depth' / f'{name}.png'), depth)
    cv2.imwrite(str(root / 'label' / f'{name}.png'), label)


def seg_samples(batch, size=64, classes=5, modalities=('rgb', 'depth')):
    """mmseg data samples with random labels for a (batch, ..., size, size)
    input."""
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    out = []
    for _ in range(batch):
        sample = SegDataSample(
            metainfo=dict(
                img_shape=(size, size),
                ori_shape=(size, size),
                pad_shape=(size, size),
                modalities=modalities,
                img_path='x.png'))
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, classes, (1, size, size)))
        out.append(sample)
    return out


def random_seg_checkpoint(config, path, seed=0, meta=True, **cfg_options):
    """Save a randomly initialised segmentor of ``config`` (seeded) to
    ``path`` as training would: ``state_dict`` and, with ``meta``, the test
    dataset's classes, palette and modalities in ``meta.dataset_meta``.
    Returns the config."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmseg.registry import DATASETS, MODELS

    import projects.multimodal_seg  # noqa: F401  (registers the modules)
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(cfg_options)
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
        dataset = DATASETS.get(cfg.test_dataloader.dataset.type)
    model.init_weights()
    checkpoint = {'state_dict': model.state_dict()}
    if meta:
        checkpoint['meta'] = dict(
            dataset_meta=dict(
                classes=dataset.METAINFO['classes'],
                palette=dataset.METAINFO['palette'],
                modalities=tuple(cfg.test_dataloader.dataset.modalities)))
    torch.save(checkpoint, path)
    return cfg


def untrained_checkpoint(config, path, seed=0):
    """Save random weights of ``config``'s 3D detector as a checkpoint
    (with the config's classes in its meta), the image backbone not
    pretrained. Returns ``path``.

    The box regression layers are set so that every proposal becomes a box
    at its query point (no centre offset, no heading residual) of the
    classes' mean size, or of 1 m for class-agnostic sizes: random
    regression weights give boxes of zero or negative size, which hold no
    points, and GroupFree3D drops boxes with 5 points or fewer, so an
    untrained model would predict nothing. Scores stay random."""
    import torch
    from mmdet3d.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    cfg = Config.fromfile(config) if isinstance(config, str) else config
    if 'img_backbone' in cfg.model:
        cfg.model.img_backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        torch.manual_seed(seed)
        model = MODELS.build(cfg.model)
    coder = model.bbox_head.bbox_coder
    # the reg channels: centre (3), heading bins, heading residuals, then
    # the sizes (GroupFree3DBBoxCoder.split_pred)
    size_start = 3 + 2 * coder.num_dir_bins
    with torch.no_grad():
        for name, module in model.bbox_head.named_modules():
            if name.endswith('conv_reg'):
                module.weight.zero_()
                module.bias.zero_()
                if coder.size_cls_agnostic:
                    module.bias[size_start:size_start + 3] = 1.0
    classes = cfg.test_dataloader.dataset.metainfo['classes']
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(dataset_meta=dict(classes=list(classes)))), path)
    return path


def sunrgbd_layout(root):
    """The real SUN RGB-D frame of ``DATA_ROOT/sunrgbd_000017`` in the
    layout of the SUN RGB-D configs under ``root`` (a pathlib.Path):
    ``points/000017.bin``, ``sunrgbd_trainval/image/000017.jpg`` and
    ``sunrgbd_000017_infos.pkl``. Returns ``root``."""
    import shutil
    fixture = osp.join(DATA_ROOT, 'sunrgbd_000017')
    (root / 'points').mkdir()
    (root / 'sunrgbd_trainval' / 'image').mkdir(parents=True)
    shutil.copy(osp.join(fixture, '000017.bin'), root / 'points')
    shutil.copy(
        osp.join(fixture, '000017.jpg'), root / 'sunrgbd_trainval' / 'image')
    shutil.copy(osp.join(fixture, 'sunrgbd_000017_infos.pkl'), root)
    return root


def dataset_prediction(model, dataset_cfg, index=0, seed=0):
    """``model.test_step`` on sample ``index`` of the dataset
    ``dataset_cfg`` builds (mmdet3d scope), with numpy seeded by ``seed``
    before loading (PointSample draws at random): the reference the
    inference tools are compared with. Returns the Det3DDataSample."""
    import numpy as np
    import torch
    from mmdet3d.registry import DATASETS
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope('mmdet3d'):
        dataset = DATASETS.build(dataset_cfg)
        np.random.seed(seed)
        sample = dataset[index]
    with torch.no_grad():
        return model.test_step(pseudo_collate([sample]))[0]


def small_tokenfusion3d_model(
        num_points=(512, 256, 128, 64),
        num_proposal=64,
        vit_layers=4,
        **img_backbone):
    """The lines of a config that shrink a TokenFusion 3D config's model:
    the 64-d GroupFree3D of configs/_base_/models/groupfree3d_tiny_synthetic
    .py (``num_points`` seeds per SA layer, ``num_proposal`` proposals) and
    a ``vit_layers``-block 64-d YOLOS with 10 detection tokens, not
    pretrained; ``img_backbone`` adds YOLOS settings (Python literals).
    Braces are doubled: the text goes into templates filled with
    ``str.format``."""
    extra = ''.join(f'        {key}={value!r},\n'
                    for key, value in img_backbone.items())
    text = f"""dims = 64
model = dict(
    backbone=dict(
        num_points={tuple(num_points)!r},
        num_samples=(32, 16, 16, 8),
        sa_channels=((32, 32, 64), (64, 64, 128), (64, 64, 128),
                     (64, 64, 128)),
        fp_channels=((128, 128), (128, dims))),
    bbox_head=dict(
        in_channels=dims,
        num_decoder_layers=2,
        num_proposal={num_proposal},
        transformerlayers=dict(
            attn_cfgs=dict(embed_dims=dims, num_heads=4),
            ffn_cfgs=dict(embed_dims=dims, feedforward_channels=128)),
        pred_layer_cfg=dict(
            in_channels=dims, shared_conv_channels=(dims, dims)),
        decoder_self_posembeds=dict(
            type='ConvBNPositionalEncoding',
            input_channel=6,
            num_pos_feats=dims),
        decoder_cross_posembeds=dict(
            type='ConvBNPositionalEncoding',
            input_channel=3,
            num_pos_feats=dims)),
    img_backbone=dict(
        arch=dict(
            _delete_=True, embed_dims=64, num_layers={vit_layers},
            num_heads=4),
        num_det_tokens=10,
{extra}        init_cfg=None),
    img_bbox_head=dict(embed_dims=64))
"""
    return text.replace('{', '{{').replace('}', '}}')


def write_taskonomy_png(path, array):
    """Write ``array`` unchanged as a PNG (colour arrays given in RGB
    order), creating the folders: uint8 -> 8-bit, uint16 -> 16-bit."""
    import os
    os.makedirs(osp.dirname(path), exist_ok=True)
    if array.ndim == 3 and array.shape[2] in (3, 4):
        array = array[..., [2, 1, 0, 3][:array.shape[2]]]  # OpenCV: BGR(A)
    assert cv2.imwrite(path, array), path


def taskonomy_domain_arrays(size, seed=0):
    """Random arrays of every Taskonomy domain in its stored format
    (``size`` = (H, W)): 8-bit RGB rgb / normal / principal_curvature,
    8-bit grey reshading, 16-bit single-channel edges and depths."""
    import numpy as np
    rng = np.random.default_rng(seed)
    h, w = size

    def colour():
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)

    return dict(
        rgb=colour(),
        normal=colour(),
        principal_curvature=colour(),
        reshading=rng.integers(0, 256, (h, w), dtype=np.uint8),
        edge_texture=rng.integers(0, 12000, (h, w), dtype=np.uint16),
        edge_occlusion=rng.integers(0, 12000, (h, w), dtype=np.uint16),
        depth_euclidean=rng.integers(0, 65536, (h, w), dtype=np.uint16),
        depth_zbuffer=rng.integers(0, 65536, (h, w), dtype=np.uint16))
