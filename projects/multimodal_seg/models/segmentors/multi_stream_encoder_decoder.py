"""Encoder-decoder over the streams of a fused backbone: the shared head on
every stream and the learned ensemble of their logits (TokenFusion's and
GeminiFusion's segmentor)."""
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.structures import PixelData
from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.utils import add_prefix


@MODELS.register_module()
class MultiStreamEncoderDecoder(EncoderDecoder):
    """Encoder-decoder over a fused backbone (:class:`FusedMiT`,
    :class:`FusedSwin`) whose S streams are stacked in the batch.

    The backbone returns per-stream pyramids stacked as (S*B, ...). The
    shared decode head runs once on the whole stack, giving logits y_m for
    every stream; the prediction is the ensemble

        ens = sum_m softmax(alpha)_m * detach(y_m),

    with ``alpha`` (S, ) learned (``train_alpha``; the TokenFusion
    reference forgot to optimise it, its later copy does; GeminiFusion
    keeps it fixed). Training minimises CE(y_m) for every stream + CE(ens)
    + whatever the backbone's fusion layers add (``backbone.fusion_loss()``:
    TokenFusion's ``loss_sparsity``, channel exchange's
    ``loss_channel_sparsity``). What the fusion layers recorded for logging
    (``backbone.fusion_statistics(stream_names)``, e.g. the fraction of
    exchanged tokens per stage and stream) is kept in :attr:`fusion_stats`
    after every ``loss`` call, for :class:`FusionStatsHook`.

    Streams: S = ``backbone.num_streams``. Usually one stream per modality,
    named after it; behind an auxiliary hub (M > 2 modalities, GeminiFusion's
    DeLiVER branch) two, the first modality and the aggregated auxiliaries,
    named ``(<first modality>, 'aux')`` (:attr:`stream_names`).

    Predictions: ``pred_sem_seg`` / ``seg_logits`` from the ensemble, plus
    ``pred_sem_seg_<stream>`` for every stream. Whole and slide inference
    and mmseg's TTA work as for ``EncoderDecoder``.

    Args:
        train_alpha (bool): Learn the ensemble weights. Defaults to True.
        modality_names (Sequence[str], optional): Names of the M
            modalities, used (via :attr:`stream_names`) in losses and
            predictions; defaults to the data preprocessor's modalities.
        **kwargs: ``EncoderDecoder`` arguments.
    """

    def __init__(self,
                 train_alpha: bool = True,
                 modality_names: Optional[Sequence[str]] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_modalities = self.backbone.num_modalities
        names = modality_names or getattr(self.data_preprocessor, 'modalities',
                                          None)
        names = tuple(names or (f'm{i}' for i in range(self.num_modalities)))
        if len(names) != self.num_modalities:
            raise ValueError(f'{len(names)} modality names {names} for a '
                             f'backbone of {self.num_modalities} modalities')
        self.modality_names = names
        self.num_streams = self.backbone.num_streams
        if self.num_streams == self.num_modalities:
            self.stream_names = names
        elif self.num_streams == 2:  # RGB + one aggregated auxiliary stream
            self.stream_names = (names[0], 'aux')
        else:
            raise ValueError(
                f'backbone.num_streams={self.num_streams} for '
                f'{self.num_modalities} modalities: expected one stream per '
                'modality or 2 (RGB + aggregated auxiliaries)')
        self.alpha = nn.Parameter(
            torch.ones(self.num_streams), requires_grad=train_alpha)
        # slide inference accumulates the ensemble and every stream
        self.out_channels = self.decode_head.out_channels * (
            self.num_streams + 1)
        self.fusion_stats: Dict[str, torch.Tensor] = {}

    def stream_logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits (S, B, K, h, w) of the S streams."""
        logits = self.decode_head(self.extract_feat(inputs))
        return logits.reshape(self.num_streams, -1, *logits.shape[1:])

    def ensemble(self, logits: torch.Tensor) -> torch.Tensor:
        """(S, B, K, h, w) -> (B, K, h, w); gradients reach only alpha."""
        weights = self.alpha.softmax(0).view(-1, 1, 1, 1, 1)
        return (weights * logits.detach()).sum(0)

    def loss(self, inputs: torch.Tensor, data_samples) -> dict:
        return self.stream_losses(self.stream_logits(inputs), data_samples)

    def stream_losses(self, logits: torch.Tensor, data_samples) -> dict:
        """The training losses of stream logits (S, B, K, h, w) just
        computed: CE of every stream and of the ensemble, and the fusion
        layers' terms of that forward (recorded statistics kept)."""
        losses = dict()
        for name, logit in zip(self.stream_names, logits):
            losses.update(
                add_prefix(
                    self.decode_head.loss_by_feat(logit, data_samples),
                    f'decode.{name}'))
        losses.update(
            add_prefix(
                self.decode_head.loss_by_feat(
                    self.ensemble(logits), data_samples), 'decode.ensemble'))
        losses.update(self.backbone.fusion_loss())
        self.fusion_stats = self.backbone.fusion_statistics(self.stream_names)
        return losses

    def encode_decode(self, inputs: torch.Tensor, batch_img_metas) -> \
            torch.Tensor:
        """(B, K*(S+1), H, W): ensemble logits then each stream's."""
        logits = self.stream_logits(inputs)
        logits = torch.cat([self.ensemble(logits)] + list(logits), dim=1)
        return resize(
            logits,
            size=inputs.shape[2:],
            mode='bilinear',
            align_corners=self.align_corners)

    def postprocess_result(self, seg_logits: torch.Tensor, data_samples=None):
        # One unpad / flip / resize pass for all outputs, then split.
        data_samples = super().postprocess_result(seg_logits, data_samples)
        k = self.decode_head.out_channels
        for sample in data_samples:
            logits = sample.seg_logits.data
            sample.seg_logits = PixelData(data=logits[:k])
            sample.pred_sem_seg = PixelData(
                data=logits[:k].argmax(0, keepdim=True))
            for i, name in enumerate(self.stream_names):
                part = logits[(i + 1) * k:(i + 2) * k]
                sample.set_data({
                    f'pred_sem_seg_{name}':
                    PixelData(data=part.argmax(0, keepdim=True))
                })
        return data_samples
