"""Image grid of translation models on the same test samples, laid out as
TokenFusion's Figure 3: the sources | each model's output | the target.

    python tools/analysis_tools/translation_grid.py \\
        NAME=CONFIG:CHECKPOINT [NAME=CONFIG:CHECKPOINT ...] \\
        --index 0 --index 5 --out grid.png [--cfg-options ...]

Every model runs on the test split of its own config (so a one-source
model sees only its source); the samples must be the same frames in every
config (the same data set). Each output is the model's ensemble image (a
one-stream model's only image). A row per sample; a header names the
columns.
"""
import argparse
import os.path as osp
import sys
from typing import Sequence

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402

import projects.multimodal_translation  # noqa: E402,F401
from projects.multimodal_translation.visualization import (  # noqa: E402
    source_images, to_uint8)
from tools.analysis_tools.model_panels import compose  # noqa: E402
from tools.analysis_tools.model_panels import \
    load_trained_model  # noqa: E402,E501
from tools.analysis_tools.model_panels import parse_model  # noqa: E402
from tools.analysis_tools.model_panels import write_picture  # noqa: E402


@torch.no_grad()
def model_outputs(config: str,
                  checkpoint: str,
                  indices: Sequence[int],
                  cfg_options=None):
    """(samples, outputs): the packed test samples of ``config`` at
    ``indices`` and the model's ensemble image of each."""
    from mmseg.registry import DATASETS, MODELS
    cfg, model = load_trained_model(config, checkpoint, cfg_options, MODELS)
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    samples, outputs = [], []
    for index in indices:
        if not 0 <= index < len(dataset):
            raise IndexError(f'--index {index} is outside the test split of '
                             f'{config} ({len(dataset)} samples)')
        sample = dataset[index]
        batch = model.data_preprocessor(pseudo_collate([sample]), False)
        pred = model(**batch, mode='predict')[0]
        samples.append(sample)
        outputs.append(pred.pred_images['ensemble'])
    return samples, outputs


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('models', nargs='+', type=parse_model)
    parser.add_argument('--index', type=int, action='append', required=True)
    parser.add_argument('--out', required=True, help='output PNG')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    sources, target, outputs, frames = None, None, [], None
    for name, config, checkpoint in args.models:
        samples, images = model_outputs(config, checkpoint, args.index,
                                        args.cfg_options)
        meta = [s['data_samples'].metainfo for s in samples]
        these = [m['frame'] for m in meta]
        if frames is not None and these != frames:
            raise ValueError(f'{name}: its test samples are {these}, the '
                             f'first model\'s {frames}: use one data set')
        frames = these
        # the widest set of sources and the target, from any model
        names = tuple(meta[0]['sources'])
        if sources is None or len(names) > len(sources[0]):
            sources = (names, [s['inputs'] for s in samples])
        target = [s['data_samples'].gt_image for s in samples]
        outputs.append((name, images))
    names, inputs = sources
    rows = []
    for i in range(len(args.index)):
        panels = source_images(inputs[i], len(names))
        panels += [to_uint8(images[i]) for _, images in outputs]
        panels.append(to_uint8(target[i]))
        rows.append(panels)
    titles = list(names) + [n for n, _ in outputs] + ['target']
    return write_picture(compose(rows, titles), args.out)


if __name__ == '__main__':
    main()
