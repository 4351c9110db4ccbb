"""What one measured step runs: synthetic inputs and the inference /
training step of a built model.

A segmentor is driven through its own API, as ``tools/test.py`` and
``tools/train.py`` drive it:

* inference: ``predict(inputs, data_samples)`` under ``torch.no_grad``,
  logits at input resolution and their argmax (``MultiStreamEncoderDecoder``
  also the prediction of every stream, which its ``predict`` always
  returns);
* training: ``loss(inputs, data_samples)`` (``MultiStreamEncoderDecoder``:
  CE of every stream + CE of the ensemble + ``backbone.fusion_loss()``;
  ``EncoderDecoder``: the one CE), summed by ``parse_losses`` as
  ``train_step`` does, backward and ``AdamW.step``.

What differs from training, and why: the inputs are random tensors taken
as already normalised, so the data preprocessor (normalisation, padding,
batching of samples) is not timed, being the same for every model; the
optimiser is a plain ``AdamW(lr=6e-5, weight_decay=0.01)`` without an
``OptimWrapper``, the configs' parameter-wise lr multipliers or gradient
clipping, which change no tensor shape; the head has plain ``BN`` in
training mode in every row (the configs' ``SyncBN`` needs a process group;
their ``freeze_bn``, the reference's, is left out so that the single-modal
rows keep SegFormer's own head).

A backbone alone (``--backbone-only``) runs ``backbone(inputs)``; its
training loss is the mean of every feature map plus what its fusion layers
add (``fusion_loss()``), so that every output and score gets a gradient.
"""
from typing import Callable, List, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from torch import Tensor

MODES = ('infer', 'train')


def make_inputs(batch: int, channels: int, size: Sequence[int],
                num_classes: int,
                device: str) -> Tuple[Tensor, List[SegDataSample]]:
    """A random (B, channels, H, W) input and one ``SegDataSample`` per
    image: the metainfo of an unpadded, unflipped H x W image and random
    labels in [0, num_classes) as ``gt_sem_seg``."""
    h, w = size
    inputs = torch.randn(batch, channels, h, w, device=device)
    labels = torch.randint(0, num_classes, (batch, 1, h, w), device=device)
    shape = (h, w)
    samples = []
    for label in labels:
        sample = SegDataSample(
            metainfo=dict(
                img_shape=shape,
                ori_shape=shape,
                pad_shape=shape,
                padding_size=[0, 0, 0, 0]))
        sample.gt_sem_seg = PixelData(data=label)
        samples.append(sample)
    return inputs, samples


def _backbone_loss(backbone: nn.Module, inputs: Tensor) -> Tensor:
    loss = sum(feat.float().mean() for feat in backbone(inputs))
    fusion_loss = getattr(backbone, 'fusion_loss', dict)()
    return loss + sum(fusion_loss.values())


def make_step(model: nn.Module,
              inputs: Tensor,
              data_samples: List[SegDataSample],
              mode: str,
              backbone_only: bool = False) -> Callable[[], None]:
    """A closure running one inference (``mode='infer'``) or training
    (``'train'``) step of ``model`` on ``inputs`` (see the module doc).
    Sets ``model``'s eval / train mode; a training step owns its AdamW."""
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    if mode == 'infer':
        model.eval()
        metainfo = [sample.metainfo for sample in data_samples]

        def infer():
            with torch.no_grad():
                if backbone_only:
                    model(inputs)
                else:
                    # fresh samples: predict writes its outputs into them
                    model.predict(
                        inputs, [SegDataSample(metainfo=m) for m in metainfo])

        return infer
    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=6e-5, weight_decay=0.01)

    def train():
        optimizer.zero_grad(set_to_none=True)
        if backbone_only:
            loss = _backbone_loss(model, inputs)
        else:
            loss, _ = model.parse_losses(model.loss(inputs, data_samples))
        loss.backward()
        optimizer.step()

    return train
