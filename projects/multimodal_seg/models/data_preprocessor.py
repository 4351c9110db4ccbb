"""Per-modality normalisation, batching and padding."""
from typing import Any, Dict, List, Optional, Sequence

import torch
from mmseg.models import SegDataPreProcessor
from mmseg.registry import MODELS

# Defaults per modality name (overridable per entry of ``modalities``).
#   rgb:   ImageNet mean/std in RGB order; the packed image is BGR (mmcv).
#   depth: TokenFusion's normalisation, raw value x 1/5000 (mean 0,
#          std 5000), tiled to 3 channels so that the shared RGB patch
#          embedding (and ImageNet weights) apply.
#   hha:   ImageNet statistics, as the CMX / SA-Gate releases use for HHA.
#   event, lidar: 8-bit 3-channel maps (DELIVER), /255 only as the
#          CMNeXt / GeminiFusion DeLiVER code; flipped to RGB order because
#          that code reads them with torchvision (RGB) and mmcv gives BGR.
MODALITY_DEFAULTS = dict(
    rgb=dict(
        in_channels=3,
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        repeat=1),
    depth=dict(in_channels=1, mean=[0.], std=[5000.], repeat=3),
    hha=dict(
        in_channels=3,
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        repeat=1),
    event=dict(
        in_channels=3, mean=[0.], std=[255.], bgr_to_rgb=True, repeat=1),
    lidar=dict(
        in_channels=3, mean=[0.], std=[255.], bgr_to_rgb=True, repeat=1),
)


class ModalityNorm:
    """Normalisation of one modality: channel flip, (x - mean) / std, tile.
    """

    def __init__(self,
                 name: str,
                 in_channels: int,
                 mean: Sequence[float],
                 std: Sequence[float],
                 bgr_to_rgb: bool = False,
                 repeat: int = 1) -> None:
        if len(mean) not in (1, in_channels) or len(std) != len(mean):
            raise ValueError(
                f'Modality {name!r}: mean/std need 1 or in_channels='
                f'{in_channels} values, got {len(mean)} / {len(std)}')
        if bgr_to_rgb and in_channels != 3:
            raise ValueError(f'Modality {name!r}: bgr_to_rgb needs 3 '
                             f'channels, not {in_channels}')
        self.name = name
        self.in_channels = in_channels
        self.out_channels = in_channels * repeat
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.bgr_to_rgb = bgr_to_rgb
        self.repeat = repeat

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in_channels, H, W) -> (..., out_channels, H, W) float: one
        sample or a batch (the ONNX export's graph)."""
        if self.bgr_to_rgb:
            x = x.flip(-3)
        x = (x.float() - self.mean.to(x.device)) / self.std.to(x.device)
        if self.repeat > 1:
            x = x.repeat(*([1] * (x.dim() - 3)), self.repeat, 1, 1)
        return x


@MODELS.register_module()
class MultiModalSegDataPreProcessor(SegDataPreProcessor):
    """Data preprocessor for samples packed by ``PackMultiModalSegInputs``.

    The packed input of a sample is (sum of in_channels, H, W), modalities
    concatenated in the order of ``modalities``. Each modality is normalised
    on its own (see :data:`MODALITY_DEFAULTS`), then the batch is padded as
    mmseg's ``SegDataPreProcessor`` does (``pad_val`` after normalisation,
    so 0 = RGB mean and "no depth"; labels with ``seg_pad_val``).

    Output ``inputs``: (B, sum of out_channels, H, W). Models recover the
    modalities by splitting the channel axis with :attr:`out_channels`
    (e.g. RGB-D with tiled depth: 6 channels = 3 + 3).

    Every sample is checked against the configured modalities (names from
    its metainfo and the channel count) before any tensor math, with an
    error that names the sample.

    Args:
        modalities (Sequence[str | dict]): Modality names, or dicts with
            ``name`` plus any of ``in_channels``, ``mean``, ``std``,
            ``bgr_to_rgb``, ``repeat`` overriding the defaults.
        missing_modalities (Sequence[str]): Modalities to remove, e.g.
            ``('depth',)`` to evaluate an RGB-D model without depth: their
            normalised channels are replaced by zeros, i.e. by the
            modality's normalisation mean (the dataset mean for RGB / HHA,
            0 = "no measurement" for depth with the default depth
            normalisation), in training and inference alike. The channel
            layout is unchanged. Defaults to ``()`` (nothing removed).
        size, size_divisor, pad_val, seg_pad_val, batch_augments, test_cfg:
            As ``SegDataPreProcessor``.
    """

    def __init__(
        self,
        modalities: Sequence = ('rgb', 'depth'),
        size: Optional[tuple] = None,
        size_divisor: Optional[int] = None,
        pad_val: float = 0,
        seg_pad_val: float = 255,
        batch_augments: Optional[List[dict]] = None,
        test_cfg: Optional[dict] = None,
        missing_modalities: Sequence = ()
    ) -> None:
        super().__init__(
            size=size,
            size_divisor=size_divisor,
            pad_val=pad_val,
            seg_pad_val=seg_pad_val,
            batch_augments=batch_augments,
            test_cfg=test_cfg)
        self._enable_normalize = False  # done per modality instead
        self.channel_conversion = False
        self.norms = []
        for spec in modalities:
            spec = dict(name=spec) if isinstance(spec, str) else dict(spec)
            name = spec.pop('name')
            if name not in MODALITY_DEFAULTS and 'in_channels' not in spec:
                raise ValueError(
                    f'Modality {name!r} has no defaults; give in_channels, '
                    'mean and std')
            self.norms.append(
                ModalityNorm(name, **{
                    **MODALITY_DEFAULTS.get(name, {}),
                    **spec
                }))
        self.modalities = tuple(n.name for n in self.norms)
        self.in_channels = tuple(n.in_channels for n in self.norms)
        self.out_channels = tuple(n.out_channels for n in self.norms)
        if isinstance(missing_modalities, str):
            missing_modalities = (missing_modalities, )
        unknown = [m for m in missing_modalities if m not in self.modalities]
        if unknown:
            raise ValueError(
                f'missing_modalities {tuple(unknown)} are not configured '
                f'modalities; the data preprocessor has {self.modalities}')
        self.missing_modalities = tuple(missing_modalities)

    def _check(self, inputs: torch.Tensor, data_sample) -> None:
        meta = data_sample.metainfo if data_sample is not None else {}
        name = meta.get('img_path', '?')
        sample_modalities = tuple(meta.get('modalities', self.modalities))
        if sample_modalities != self.modalities:
            raise ValueError(
                f'Sample {name} holds modalities {sample_modalities} but the '
                f'data preprocessor is configured for {self.modalities}')
        if inputs.shape[0] != sum(self.in_channels):
            raise ValueError(
                f'Sample {name} has {inputs.shape[0]} input channels, '
                f'expected {sum(self.in_channels)} = {self.in_channels} for '
                f'{self.modalities}')

    def normalize(self, inputs: torch.Tensor) -> torch.Tensor:
        """Normalise a packed (..., sum in_channels, H, W) sample or batch
        into (..., sum out_channels, H, W)."""
        parts = inputs.split(self.in_channels, dim=-3)
        outputs = []
        for norm, x in zip(self.norms, parts):
            x = norm(x)
            if norm.name in self.missing_modalities:
                x = torch.zeros_like(x)  # = the mean after normalisation
            outputs.append(x)
        return torch.cat(outputs, dim=-3)

    def forward(self, data: dict, training: bool = False) -> Dict[str, Any]:
        """Check and normalise each sample per modality, then batch and pad
        as ``SegDataPreProcessor`` (whose own normalisation is off)."""
        data = self.cast_data(data)
        data_samples = data.get('data_samples', None)
        for i, x in enumerate(data['inputs']):
            self._check(x, data_samples[i] if data_samples else None)
        data['inputs'] = [self.normalize(x) for x in data['inputs']]
        return super().forward(data, training)
