"""Distribution-level quality of generated RGB images: FID and KID."""
from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmseg.registry import METRICS
from prettytable import PrettyTable

from ..feature_extractor import FIDFeatureExtractor
from ..functional import frechet_distance, kernel_inception_distance
from ..matplotlib_protocol import matplotlib_render
from .samples import GT_KEY, PRED_KEY, check_same_outputs, read_sample

RENDER_MODES = (None, 'matplotlib')
KID_SCALE = 100


@METRICS.register_module()
class FIDKIDMetric(BaseMetric):
    """FID and KID (x100) of every model output (each branch and the
    ensemble) against the targets, for RGB targets.

    ``data_samples`` carry ``pred_images`` ({output_name: (3, H, W)}) and
    ``gt_image`` (3, H, W), in [-1, 1]; see :mod:`.samples`. ``process``
    turns every image into a feature vector with a
    :class:`FIDFeatureExtractor` (so only features are kept and gathered
    across processes); ``compute_metrics`` compares, per output, the
    generated images' features with the targets' features:

    * ``{output}_fid``: :func:`frechet_distance`, unscaled.
    * ``{output}_kid``: :func:`kernel_inception_distance` x100, as the
      paper and the reference print it; the subset draws come from
      ``np.random.default_rng(kid_seed)``, restarted for each output. With
      as many images as the subset size or fewer (the reference's 500 val
      frames) the draws do not matter.

    FID / KID as published need :class:`FIDInceptionV3` with its weights
    file: ``network=dict(type='FIDInceptionV3', weights='<path to
    pt_inception-2015-12-05-6726825d.pth>')``. With few images (fewer than
    the 2048 feature dimensions) the covariances are singular and FID is
    biased upwards; compare FIDs over the same number of images only.

    Args:
        network (nn.Module | dict): The feature network (see
            :class:`FIDFeatureExtractor`) or its config.
        batch_size (int): Images per forward pass of the network.
        device (str): Where the network runs. Defaults to ``'cpu'``.
        render (str, optional): ``None`` feeds the [-1, 1] tensors to the
            network as they are; ``'matplotlib'`` first renders every image
            (generated and real) as the reference's saved PNGs
            (:func:`matplotlib_render`: per-image min-max stretch, 500x500),
            to compare with the paper's numbers.
        kid_subsets (int): KID subsets. Defaults to 50.
        kid_subset_size (int): Largest KID subset. Defaults to 1000.
        kid_seed (int): Seed of the KID subset draws. Defaults to 0.
        outputs (Sequence[str], optional): Outputs to evaluate; ``None``
            evaluates all those of the first sample.
        pred_key (str): Sample key of the generated images.
        gt_key (str): Sample key of the target.
        collect_device (str): See ``BaseMetric``.
        prefix (str, optional): Key prefix. Defaults to ``'translation'``.
    """
    default_prefix: Optional[str] = 'translation'

    def __init__(self,
                 network: Union[nn.Module, dict],
                 batch_size: int = 50,
                 device: str = 'cpu',
                 render: Optional[str] = None,
                 kid_subsets: int = 50,
                 kid_subset_size: int = 1000,
                 kid_seed: int = 0,
                 outputs: Optional[Sequence[str]] = None,
                 pred_key: str = PRED_KEY,
                 gt_key: str = GT_KEY,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if render not in RENDER_MODES:
            raise ValueError(f'FIDKIDMetric render must be one of '
                             f'{RENDER_MODES}, got {render!r}')
        self.extractor = FIDFeatureExtractor(
            network, batch_size=batch_size, device=device)
        self.render = render
        self.kid_subsets = kid_subsets
        self.kid_subset_size = kid_subset_size
        self.kid_seed = kid_seed
        self.outputs = None if outputs is None else tuple(outputs)
        self.pred_key = pred_key
        self.gt_key = gt_key

    def _prepare(self, image: torch.Tensor) -> torch.Tensor:
        if self.render == 'matplotlib':
            return torch.from_numpy(matplotlib_render(image.numpy()))
        return image

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Features of the target and of each output: one result per
        sample, ``{'real': (D,), 'fake': {output_name: (D,)}}``."""
        # (label, {output_name: image}, target) per sample, RGB only
        samples = [
            read_sample(s, i, self.pred_key, self.gt_key, self.outputs, 3)
            for i, s in enumerate(data_samples)
        ]
        if not samples:
            return
        names = list(samples[0][1])
        for label, preds, _ in samples[1:]:
            if set(preds) != set(names):
                raise ValueError(f'Data sample {label} has outputs '
                                 f'{list(preds)}, the first sample of its '
                                 f'batch {names}')
        real = self.extractor([self._prepare(gt) for _, _, gt in samples])
        fake = {}
        for name in names:
            images = [self._prepare(preds[name]) for _, preds, _ in samples]
            fake[name] = self.extractor(images)
        for index in range(len(samples)):
            per_output = {name: feats[index] for name, feats in fake.items()}
            self.results.append(dict(real=real[index], fake=per_output))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        if len(results) < 2:
            raise ValueError(f'FIDKIDMetric needs at least 2 evaluated '
                             f'images, got {len(results)}')
        names = check_same_outputs(results, 'fake')
        real = np.stack([result['real'] for result in results])
        metrics = {}
        for name in names:
            fake = np.stack([result['fake'][name] for result in results])
            metrics[f'{name}_fid'] = frechet_distance(fake, real)
            metrics[f'{name}_kid'] = KID_SCALE * kernel_inception_distance(
                fake,
                real,
                num_subsets=self.kid_subsets,
                subset_size=self.kid_subset_size,
                rng=np.random.default_rng(self.kid_seed))
        table = PrettyTable()
        table.field_names = ['output', 'FID', f'KID x{KID_SCALE}']
        for name in names:
            table.add_row([
                name, f'{metrics[f"{name}_fid"]:.3f}',
                f'{metrics[f"{name}_kid"]:.3f}'
            ])
        render = self.render or 'none'
        print_log(
            f'FID / KID over {len(results)} images (render: {render}):\n' +
            table.get_string(),
            logger=MMLogger.get_current_instance())
        return metrics
