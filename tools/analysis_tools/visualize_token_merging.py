"""Which patches merging ViTs fused, for a few test images.

    python tools/analysis_tools/visualize_token_merging.py \\
        NAME=CONFIG:CHECKPOINT [NAME=CONFIG:CHECKPOINT ...] \\
        (--index 0 --index 5 | --each-class) [--r 6] --out merges.png \\
        [--cfg-options ...]

Each CONFIG is an mmpretrain config with a token-merging backbone
(``MCTFVisionTransformer``); every model runs on the test split of its own
config at its ``r_eval`` (or ``--r``), on the images at ``--index`` or on
the first test image of every class (``--each-class``). A row per image:
the image, then
for each model the patches coloured by the token they ended up in after
the last layer (patches left alone keep their pixels; white lines separate
the groups). The column titles give the token count after the last layer;
the predicted and true classes are printed.
"""
import argparse
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import cv2  # noqa: E402
import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402

import projects.mctf  # noqa: E402,F401
from projects.mctf.visualization import merge_picture  # noqa: E402
from projects.mctf.visualization import patch_groups  # noqa: E402
from tools.analysis_tools.model_panels import compose  # noqa: E402
from tools.analysis_tools.model_panels import \
    load_trained_model  # noqa: E402,E501
from tools.analysis_tools.model_panels import parse_model  # noqa: E402
from tools.analysis_tools.model_panels import write_picture  # noqa: E402
from tools.analysis_tools.token_merging_tradeoff import \
    merging_backbone  # noqa: E402
from tools.analysis_tools.token_merging_tradeoff import parse_r  # noqa: E402

SCALE = 4


@torch.no_grad()
def merge_panels(name, config, checkpoint, indices, r=None, cfg_options=None):
    """(images, panels, tokens): the test images (RGB) at ``indices`` (None:
    the first of every class), the merge picture of each and the token
    count after the last layer."""
    from mmpretrain.registry import DATASETS, MODELS
    cfg, model = load_trained_model(config, checkpoint, cfg_options, MODELS)
    backbone = merging_backbone(model, name, config)
    if r is not None:
        backbone.r_eval = r
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    classes = dataset.metainfo['classes']
    if indices is None:
        labels = [int(label) for label in dataset.get_gt_labels()]
        indices = [labels.index(c) for c in sorted(set(labels))]
    images, panels = [], []
    for index in indices:
        if not 0 <= index < len(dataset):
            raise IndexError(f'--index {index} is outside the test split of '
                             f'{config} ({len(dataset)} images)')
        sample = dataset[index]
        batch = model.data_preprocessor(pseudo_collate([sample]), False)
        pred = model(**batch, mode='predict')[0]
        trace = backbone.last_trace
        image = sample['inputs'].permute(1, 2, 0).numpy()[..., ::-1]  # RGB
        groups = patch_groups(trace.index[0].numpy(),
                              backbone.patch_resolution,
                              backbone.num_extra_tokens)
        images.append(image)
        panels.append(merge_picture(image, groups, SCALE))
        print(
            f'[merges] {name} image {index}: predicts '
            f'{classes[int(pred.pred_label)]}, true '
            f'{classes[int(sample["data_samples"].gt_label)]}, '
            f'{trace.tokens[-1]} tokens',
            flush=True)
    return images, panels, trace.tokens[-1]


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('models', nargs='+', type=parse_model)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument('--index', type=int, action='append')
    which.add_argument(
        '--each-class',
        action='store_true',
        help='the first test image of every class')
    parser.add_argument(
        '--r', type=parse_r, help="r of every model (default: its r_eval)")
    parser.add_argument('--out', required=True, help='output PNG')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    images, columns, titles = None, [], ['image']
    for name, config, checkpoint in args.models:
        these, panels, tokens = merge_panels(name, config, checkpoint,
                                             args.index, args.r,
                                             args.cfg_options)
        same = images is None or all(
            (a == b).all() for a, b in zip(images, these))
        if not same:
            raise ValueError(f'{name}: its test images differ from the '
                             "first model's: use one data set")
        images = these
        columns.append(panels)
        titles.append(f'{name} ({tokens} tokens)')
    rows = []
    for i, image in enumerate(images):
        big = cv2.resize(
            image, (image.shape[1] * SCALE, image.shape[0] * SCALE),
            interpolation=cv2.INTER_NEAREST)
        rows.append([big] + [panels[i] for panels in columns])
    return write_picture(compose(rows, titles, scale=1), args.out)


if __name__ == '__main__':
    main()
