"""The data sample of one image-to-image translation example.

A batch from the translation pipelines is ``dict(inputs=..., data_samples=
...)``: ``inputs`` holds per sample a float32 (M * 3, H, W) tensor, the M
source domains stacked in the order of ``metainfo['sources']``, each with 3
channels in [-1, 1]; ``data_samples`` holds a :class:`TranslationDataSample`
per sample with

* data fields: ``gt_image`` (float32 (3, H, W) tensor in [-1, 1], the
  target domain after the same geometry as the sources) and, once a model
  has predicted, ``pred_image`` (same shape and range; the ensemble of a
  multi-stream generator) and ``pred_images`` (``{output name: image}``,
  every stream and the ensemble, what the evaluators read);
* metainfo: ``sources`` (tuple of domain names), ``target`` (domain name),
  ``source_paths``, ``target_path``, ``sample_idx`` (index in the
  dataset), ``frame`` (the split-list line), ``ori_shape`` and
  ``img_shape`` ((H, W) before and after the pipeline) and, when the
  pipeline applied them, ``scale_factor``, ``crop_offset`` ((top, left))
  and ``flip`` / ``flip_direction``.
"""
import torch
from mmengine.structures import BaseDataElement


def _check_image(value, name: str) -> None:
    if not isinstance(value, torch.Tensor) or value.dim() != 3:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) \
            else type(value).__name__
        raise TypeError(f'{name} must be a (C, H, W) tensor, got {shape}')


class TranslationDataSample(BaseDataElement):
    """Ground truth and prediction of one translation example (see the
    module docstring for the fields)."""

    @property
    def gt_image(self) -> torch.Tensor:
        return self._gt_image

    @gt_image.setter
    def gt_image(self, value: torch.Tensor) -> None:
        _check_image(value, 'gt_image')
        self.set_field(value, '_gt_image', dtype=torch.Tensor)

    @gt_image.deleter
    def gt_image(self) -> None:
        del self._gt_image

    @property
    def pred_image(self) -> torch.Tensor:
        return self._pred_image

    @pred_image.setter
    def pred_image(self, value: torch.Tensor) -> None:
        _check_image(value, 'pred_image')
        self.set_field(value, '_pred_image', dtype=torch.Tensor)

    @pred_image.deleter
    def pred_image(self) -> None:
        del self._pred_image
