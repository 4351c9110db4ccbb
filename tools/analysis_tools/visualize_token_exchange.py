"""Draw which tokens each modality took from the others (TokenFusion,
Figures 4 and 6 of the paper), for a segmentor or a translation generator.

For each chosen sample of a split (built through that split's dataset with
the config's *test* pipeline and the model's data preprocessor, so the
input is exactly what testing feeds the model), the backbone runs in eval
mode on the whole (padded) image and, for each chosen fused layer, every
modality's panel highlights the tokens whose score fell below θ (the
``threshold`` of the backbone's ``TokenExchange`` fusion layer), i.e. whose
attention update (or token, with ``variant='token'``) came from another
modality. The highlight colour names the source modality (the other one for
M = 2, the layer's group allocation for M > 2). Token cells are upsampled to
pixels by nearest neighbour on the token grid of the layer's stage.

Layout of one PNG per sample: a header (sample, θ, legend), then one row
per layer: [rgb panel | depth panel | ...], each with a title giving the
fraction of the modality's tokens taken from others.

For a translation model (``MultiStreamTranslator``) the fused MiT is the
generator's encoder and the panels are its sources.

Example (CONFIG e.g. the synthetic demo ``configs/tokenfusion/
tokenfusion_mit-tiny_1xb8-1k_synthetic-rgbd-64x64.py`` or ``configs/
tokenfusion_translation/tokenfusion-translation_mit-tiny_1xb4-1k_synthetic-
shade-texture2rgb-64x64.py``)::

    python tools/analysis_tools/visualize_token_exchange.py CONFIG \\
        work_dirs/demo/iter_1000.pth --index 0 --index 3 --out-dir vis/ \\
        [--layers block1.0 block4.0] [--split test] [--cfg-options ...]
"""
import argparse
import os
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import cv2  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.runner import load_checkpoint  # noqa: E402

# importing the package registers its modules and makes checkpoints load
# under torch >= 2.6
import projects.multimodal_seg  # noqa: E402,F401
import projects.multimodal_translation  # noqa: E402,F401
from projects.multimodal_seg.visualization.token_exchange_maps import (  # noqa: E402,E501
    default_layers, token_exchange, visualize_sample)
from projects.multimodal_translation.models import \
    MultiStreamTranslator  # noqa: E402
from projects.multimodal_translation.visualization import (  # noqa: E402
    frame_name, translation_exchange_figure)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Draw the tokens each modality took from the others '
        '(TokenFusion, Figure 4)')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--index',
        type=int,
        action='append',
        required=True,
        help='sample index in the split (repeat for several samples)')
    parser.add_argument(
        '--split',
        default='test',
        choices=['train', 'val', 'test'],
        help='dataset of <split>_dataloader (always with the test pipeline)')
    parser.add_argument(
        '--layers',
        nargs='+',
        help='fused blocks to draw, e.g. block1.0 block2.1 (default: the '
        'last fused block of each stage)')
    parser.add_argument('--out-dir', required=True, help='output directory')
    parser.add_argument(
        '--scale',
        type=int,
        default=0,
        help='integer upscaling of the panels (default: auto, panels of at '
        'least 256 pixels on the shorter side)')
    parser.add_argument(
        '--alpha', type=float, default=0.6, help='highlight opacity')
    parser.add_argument(
        '--device',
        default='cuda:0' if torch.cuda.is_available() else 'cpu',
        help='device to run the backbone on')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs')
    return parser.parse_args(argv)


def build_dataset(cfg: Config, split: str):
    from mmseg.registry import DATASETS
    dataset_cfg = cfg[f'{split}_dataloader']['dataset'].copy()
    if 'pipeline' in dataset_cfg:
        dataset_cfg['pipeline'] = cfg.test_dataloader.dataset.pipeline
    return DATASETS.build(dataset_cfg)


def fused_mit(model):
    """The fused MiT of a segmentor (its backbone) or of a translator (its
    generator's encoder)."""
    if isinstance(model, MultiStreamTranslator):
        return model.generator.encoder
    return model.backbone


def build_model(cfg: Config, checkpoint: str, device: str):
    from mmseg.registry import MODELS
    if 'backbone' in cfg.model:
        cfg.model.backbone.pop('init_cfg', None)
    cfg.model.pop('pretrained', None)
    model = MODELS.build(cfg.model)
    token_exchange(fused_mit(model))
    load_checkpoint(model, checkpoint, map_location='cpu')
    return model.to(device).eval()


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = build_model(cfg, args.checkpoint, args.device)
    layers = args.layers or default_layers(
        token_exchange(fused_mit(model)).block_names)
    dataset = build_dataset(cfg, args.split)
    os.makedirs(args.out_dir, exist_ok=True)
    paths = []
    for index in args.index:
        if not 0 <= index < len(dataset):
            raise IndexError(f'--index {index} is outside the {args.split} '
                             f'split ({len(dataset)} samples)')
        data = dataset[index]
        meta = data['data_samples'].metainfo
        if isinstance(model, MultiStreamTranslator):
            figure, fractions = translation_exchange_figure(
                model, data, layers, args.scale, args.alpha)
            name = frame_name(meta['frame']).replace('/', '_')
        else:
            figure, fractions = visualize_sample(model, data, layers,
                                                 args.scale, args.alpha)
            name = osp.splitext(osp.basename(meta['img_path']))[0]
        path = osp.join(args.out_dir, f'{args.split}_{index:04d}_{name}.png')
        cv2.imwrite(path, figure[..., ::-1])
        paths.append(path)
        print(f'{path}')
        for layer, values in fractions.items():
            text = '  '.join(f'{m}: {v:.4f}' for m, v in values.items())
            print(f'  {layer} exchanged  {text}')
    return paths


if __name__ == '__main__':
    main()
