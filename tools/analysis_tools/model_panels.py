"""What the analysis tools that compare trained models share: the
``NAME=CONFIG:CHECKPOINT`` model argument, a trained model built from it
and a titled grid of picture panels."""
import argparse
import os
import os.path as osp
from typing import List, Sequence, Tuple

import cv2
import numpy as np
from mmengine.config import Config
from mmengine.registry import Registry, init_default_scope
from mmengine.runner import CheckpointLoader

from projects.common.checkpoint import load_state_dict_exactly

HEADER = 24  # pixels of the column titles
GAP = 4


def parse_model(text: str) -> Tuple[str, str, str]:
    """'NAME=CONFIG:CHECKPOINT' -> (name, config, checkpoint)."""
    name, sep, rest = text.partition('=')
    config, sep2, checkpoint = rest.rpartition(':')
    if not (sep and sep2 and name and config and checkpoint):
        raise argparse.ArgumentTypeError(
            f'{text!r}: expected NAME=CONFIG:CHECKPOINT')
    return name, config, checkpoint


def load_trained_model(config: str, checkpoint: str, cfg_options,
                       models: Registry) -> Tuple[Config, object]:
    """(cfg, model): CONFIG (with ``cfg_options`` merged) and its model,
    built in the registry ``models`` under the config's default scope,
    with every key of CHECKPOINT loaded (an error names what does not
    match), in eval mode."""
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', models.scope))
    model = models.build(cfg.model)
    load_state_dict_exactly(
        model, CheckpointLoader.load_checkpoint(checkpoint, 'cpu'), checkpoint,
        f'the model of {config}')
    model.eval()
    return cfg, model


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


def write_picture(picture: np.ndarray, out: str) -> str:
    """Write an RGB picture to the file ``out`` (folders made); returns
    ``out``."""
    if osp.dirname(out):
        os.makedirs(osp.dirname(out), exist_ok=True)
    cv2.imwrite(out, picture[..., ::-1])
    print(out)
    return out
