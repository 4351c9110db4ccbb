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
import os
import os.path as osp
import sys
from typing import List, Sequence, Tuple

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.runner import CheckpointLoader  # noqa: E402

import projects.multimodal_translation  # noqa: E402,F401
from projects.common.checkpoint import load_state_dict_exactly  # noqa: E402
from projects.multimodal_translation.visualization import (  # noqa: E402
    source_images, to_uint8)

HEADER = 24  # pixels of the column titles
GAP = 4


def parse_model(text: str) -> Tuple[str, str, str]:
    name, sep, rest = text.partition('=')
    config, sep2, checkpoint = rest.rpartition(':')
    if not (sep and sep2 and name and config and checkpoint):
        raise argparse.ArgumentTypeError(
            f'{text!r}: expected NAME=CONFIG:CHECKPOINT')
    return name, config, checkpoint


@torch.no_grad()
def model_outputs(config: str,
                  checkpoint: str,
                  indices: Sequence[int],
                  cfg_options=None):
    """(samples, outputs): the packed test samples of ``config`` at
    ``indices`` and the model's ensemble image of each."""
    from mmseg.registry import DATASETS, MODELS
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = MODELS.build(cfg.model)
    load_state_dict_exactly(
        model, CheckpointLoader.load_checkpoint(checkpoint, 'cpu'), checkpoint,
        f'the model of {config}')
    model.eval()
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


def compose(rows: List[List[np.ndarray]],
            titles: Sequence[str],
            scale: int = 2) -> np.ndarray:
    """Rows of equal-size RGB panels -> one RGB picture with titles."""
    h, w = rows[0][0].shape[:2]
    ph, pw = h * scale, w * scale
    cols = len(titles)
    canvas = np.full(
        (HEADER + len(rows) * (ph + GAP), cols * (pw + GAP) + GAP, 3), 255,
        np.uint8)
    for c, title in enumerate(titles):
        x = GAP + c * (pw + GAP)
        (tw, th), _ = cv2.getTextSize(title, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        size = min(0.4, 0.4 * (pw - 4) / max(tw, 1))
        cv2.putText(canvas, title, (x + 2, HEADER - 8),
                    cv2.FONT_HERSHEY_SIMPLEX, size, (0, 0, 0), 1, cv2.LINE_AA)
    for r, panels in enumerate(rows):
        y = HEADER + r * (ph + GAP)
        for c, panel in enumerate(panels):
            x = GAP + c * (pw + GAP)
            canvas[y:y + ph,
                   x:x + pw] = np.repeat(np.repeat(panel, scale, 0), scale, 1)
    return canvas


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
    picture = compose(rows, titles)
    if osp.dirname(args.out):
        os.makedirs(osp.dirname(args.out), exist_ok=True)
    cv2.imwrite(args.out, picture[..., ::-1])
    print(args.out)
    return args.out


if __name__ == '__main__':
    main()
