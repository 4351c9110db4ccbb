"""TokenFusion segmentor: shared head per modality + learned ensemble."""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.structures import PixelData
from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.utils import add_prefix

from .channel_exchange import (channel_exchange_statistics,
                               channel_sparsity_loss)
from .token_fusion import fusion_statistics, sparsity_loss


@MODELS.register_module()
class TokenFusionEncoderDecoder(EncoderDecoder):
    """Encoder-decoder over a modality-stacked backbone (e.g.
    :class:`TokenFusionMiT`).

    The backbone returns per-stream pyramids stacked as (S*B, ...) and the
    token scores of its fused blocks. The shared decode head runs once on
    the whole stack, giving logits y_m for every stream; the prediction is
    the ensemble

        ens = sum_m softmax(alpha)_m * detach(y_m),

    with ``alpha`` (S, ) learned (``train_alpha``; the yikaiw reference
    forgot to optimise it, the huawei-noah copy does). Training minimises
    CE(y_m) for every stream + CE(ens) + λ · sparsity(scores), the last
    reduced by ``sparsity_reduction`` (``'sum'`` as the reference, where
    λ = 1e-6 for the B3 recipe, or ``'mean'``). A backbone without token
    scores (``TokenFusionMiT(fusion='geminifusion')``, GeminiFusion) returns
    an empty score list: no sparsity term is added and ``fusion_stats``
    stays empty.

    With a channel-exchanging backbone (``TokenFusionMiT(channel_exchange=
    ...)``, CEN-style, TokenFusion supplementary Table 9) and
    ``channel_sparsity_weight`` λ2 > 0, the loss also holds
    ``loss_channel_sparsity`` = λ2 · Σ|γ| over the exchanging LayerNorms'
    scale factors (:meth:`TokenFusionMiT.channel_gammas`), and
    ``fusion_stats`` the fraction of exchanged channels per modality
    (``'channels/<modality>/exchanged'``).

    Streams: S = ``backbone.num_streams`` (M where the backbone has none).
    Usually one stream per modality, named after it; a GeminiFusion
    backbone with M > 2 modalities (DeLiVER-style hub) has two, RGB and
    the aggregated auxiliaries, named ``(<first modality>, 'aux')``
    (:attr:`stream_names`).

    Predictions: ``pred_sem_seg`` / ``seg_logits`` from the ensemble, plus
    ``pred_sem_seg_<stream>`` for every stream. Whole and slide inference
    and mmseg's TTA work as for ``EncoderDecoder``.

    Args:
        sparsity_weight (float): λ. Defaults to 1e-6.
        sparsity_reduction (str): ``'sum'`` or ``'mean'``.
        train_alpha (bool): Learn the ensemble weights. Defaults to True.
        channel_sparsity_weight (float): λ2 of the l1 term on the channel-
            exchange scale factors. Defaults to 0 (off; CEN / Table 9 use
            1e-3). Needs a backbone with ``channel_exchange``.
        modality_names (Sequence[str], optional): Names of the M
            modalities, used (via :attr:`stream_names`) in losses and
            predictions; defaults to the data preprocessor's modalities.
        **kwargs: ``EncoderDecoder`` arguments.
    """

    def __init__(self,
                 sparsity_weight: float = 1e-6,
                 sparsity_reduction: str = 'sum',
                 train_alpha: bool = True,
                 channel_sparsity_weight: float = 0.,
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
        self.num_streams = getattr(self.backbone, 'num_streams',
                                   self.num_modalities)
        if self.num_streams == self.num_modalities:
            self.stream_names = names
        elif self.num_streams == 2:  # RGB + one aggregated auxiliary stream
            self.stream_names = (names[0], 'aux')
        else:
            raise ValueError(
                f'backbone.num_streams={self.num_streams} for '
                f'{self.num_modalities} modalities: expected one stream per '
                'modality or 2 (RGB + aggregated auxiliaries)')
        self.sparsity_weight = sparsity_weight
        if sparsity_reduction not in ('sum', 'mean'):
            raise ValueError("sparsity_reduction must be 'sum' or 'mean'")
        self.sparsity_reduction = sparsity_reduction
        self.channel_sparsity_weight = channel_sparsity_weight
        if channel_sparsity_weight and not self._channel_gammas():
            raise ValueError('channel_sparsity_weight needs a backbone with '
                             'channel exchange (TokenFusionMiT('
                             'channel_exchange=dict(...)))')
        self.alpha = nn.Parameter(
            torch.ones(self.num_streams), requires_grad=train_alpha)
        # slide inference accumulates the ensemble and every stream
        self.out_channels = self.decode_head.out_channels * (
            self.num_streams + 1)
        self.fusion_stats: Dict[str, torch.Tensor] = {}

    def extract_feat(self, inputs: torch.Tensor) -> List[torch.Tensor]:
        return self.backbone(inputs)[0]

    def modality_logits(self, inputs: torch.Tensor):
        """Returns (logits (S, B, K, h, w) of the S streams, token scores of
        fused blocks)."""
        feats, scores = self.backbone(inputs)
        logits = self.decode_head(feats)
        return logits.reshape(self.num_streams, -1, *logits.shape[1:]), scores

    def ensemble(self, logits: torch.Tensor) -> torch.Tensor:
        """(S, B, K, h, w) -> (B, K, h, w); gradients reach only alpha."""
        weights = self.alpha.softmax(0).view(-1, 1, 1, 1, 1)
        return (weights * logits.detach()).sum(0)

    def loss(self, inputs: torch.Tensor, data_samples) -> dict:
        logits, scores = self.modality_logits(inputs)
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
        if scores:
            losses['loss_sparsity'] = self.sparsity_weight * sparsity_loss(
                scores, self.sparsity_reduction)
            self.fusion_stats = fusion_statistics(
                scores, self.backbone.fused_blocks,
                self.backbone.fusion_threshold, self.stream_names)
        else:  # no token scores (e.g. GeminiFusion): nothing to regularise
            self.fusion_stats = {}
        gammas = self._channel_gammas()
        if gammas:
            if self.channel_sparsity_weight:
                losses['loss_channel_sparsity'] = (
                    self.channel_sparsity_weight *
                    channel_sparsity_loss(gammas))
            self.fusion_stats.update(
                channel_exchange_statistics(
                    gammas, self.backbone.channel_exchange_threshold,
                    self.stream_names))
        return losses

    def _channel_gammas(self) -> List[torch.Tensor]:
        """Scale factors of the backbone's channel-exchanging norms."""
        getter = getattr(self.backbone, 'channel_gammas', None)
        return getter() if getter is not None else []

    def encode_decode(self, inputs: torch.Tensor, batch_img_metas) -> \
            torch.Tensor:
        """(B, K*(S+1), H, W): ensemble logits then each stream's."""
        logits, _ = self.modality_logits(inputs)
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
