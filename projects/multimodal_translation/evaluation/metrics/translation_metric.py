"""Pixel-level quality of generated images: MAE, MSE, RMSE, PSNR, SSIM."""
import math
from typing import Dict, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmseg.registry import METRICS
from prettytable import PrettyTable

from ..functional import (mean_absolute_error, mean_squared_error,
                          peak_signal_noise_ratio, ssim)
from .samples import GT_KEY, PRED_KEY, check_same_outputs, read_sample

TRANSLATION_METRICS = ('mae', 'mse', 'rmse', 'psnr', 'ssim')
# per-image measures; rmse is derived from mse over the data set
PER_IMAGE = dict(
    mae=mean_absolute_error,
    mse=mean_squared_error,
    psnr=peak_signal_noise_ratio,
    ssim=ssim)


@METRICS.register_module()
class TranslationMetric(BaseMetric):
    """MAE / MSE / RMSE / PSNR / SSIM of every model output (each branch and
    the ensemble) against the target, on images in [-1, 1].

    ``data_samples`` carry ``pred_images`` ({output_name: (C, H, W)}) and
    ``gt_image`` (C, H, W), in [-1, 1]; see :mod:`.samples`.

    Per image (see :mod:`..functional`): MAE and MSE are means over all
    elements of the [-1, 1] values; PSNR uses the peak-to-peak range 2;
    SSIM is computed on the images mapped to [0, 1]. Over the data set:

    * ``mae``, ``mse``, ``psnr``, ``ssim``: means of the per-image values
      (``psnr`` is ``inf`` if any image is reproduced exactly).
    * ``rmse``: ``sqrt(mean of the per-image MSE)``.

    This is the reference's convention: it evaluates with batch size 1 and
    logs the mean L1 over batches (images) and, as its "rl2", the square
    root of the mean per-batch MSE. Nothing is rescaled here. TokenFusion's
    Table 1 prints its MSE column multiplied by 10: divide the table by 10
    before comparing with ``mse`` (or with ``rmse``, should the table have
    been filled from the reference's root-MSE log; its code alone does not
    settle which). Keys are ``'{prefix}/{output}_{metric}'``, e.g.
    ``translation/ens_rmse``.

    Args:
        metrics (Sequence[str]): Any of ``'mae', 'mse', 'rmse', 'psnr',
            'ssim'``. Defaults to all.
        outputs (Sequence[str], optional): Outputs to evaluate; ``None``
            evaluates all those of the first sample.
        pred_key (str): Sample key of the generated images.
        gt_key (str): Sample key of the target.
        collect_device (str): See ``BaseMetric``.
        prefix (str, optional): Key prefix. Defaults to ``'translation'``.
    """
    default_prefix: Optional[str] = 'translation'

    def __init__(self,
                 metrics: Sequence[str] = TRANSLATION_METRICS,
                 outputs: Optional[Sequence[str]] = None,
                 pred_key: str = PRED_KEY,
                 gt_key: str = GT_KEY,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        metrics = tuple(metrics)
        unknown = sorted(set(metrics) - set(TRANSLATION_METRICS))
        if not metrics or unknown:
            raise ValueError(f'TranslationMetric metrics must be among '
                             f'{TRANSLATION_METRICS}, got {metrics}')
        self.metrics = metrics
        self.outputs = None if outputs is None else tuple(outputs)
        self.pred_key = pred_key
        self.gt_key = gt_key
        # per-image measures to compute (rmse needs mse)
        needed = {'mse' if m == 'rmse' else m for m in metrics}
        self.per_image = [m for m in PER_IMAGE if m in needed]

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Per-image measures of each output: one result per sample,
        ``{'outputs': {output_name: {measure: value}}}``."""
        for index, sample in enumerate(data_samples):
            _, preds, gt = read_sample(sample, index, self.pred_key,
                                       self.gt_key, self.outputs)
            target = gt.numpy()
            self.results.append({
                'outputs': {
                    name: {
                        measure: PER_IMAGE[measure](pred.numpy(), target)
                        for measure in self.per_image
                    }
                    for name, pred in preds.items()
                }
            })

    def compute_metrics(self, results: list) -> Dict[str, float]:
        if not results:
            raise ValueError('TranslationMetric: no sample was evaluated')
        names = check_same_outputs(results, 'outputs')
        metrics = {}
        for name in names:
            values = {}
            for measure in self.per_image:
                values[measure] = np.array(
                    [result['outputs'][name][measure] for result in results])
            for metric in self.metrics:
                if metric == 'rmse':
                    value = math.sqrt(values['mse'].mean())
                else:
                    value = values[metric].mean()
                metrics[f'{name}_{metric}'] = float(value)
        self._log_table(names, metrics, len(results))
        return metrics

    def _log_table(self, names, metrics, count: int) -> None:
        table = PrettyTable()
        table.field_names = ['output'] + list(self.metrics)
        for name in names:
            table.add_row([name] + [
                f'{metrics[f"{name}_{metric}"]:.4f}' for metric in self.metrics
            ])
        print_log(
            f'Translation metrics over {count} images:\n' + table.get_string(),
            logger=MMLogger.get_current_instance())
