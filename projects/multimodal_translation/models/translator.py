"""TokenFusion's image-to-image translation as an mmengine model: a
conditional GAN (pix2pix recipe) over the streams of a fused generator."""
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel, ImgDataPreprocessor
from mmengine.optim import OptimWrapperDict
from mmseg.registry import MODELS

from .fused_mit_gan import pair_inputs


def discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """sum over streams of 0.5 * (BCE(D(real), 1) + BCE(D(fake), 0)).
    ``real``, ``fake``: (S, B, 1, h, w) probabilities."""
    per_stream = [
        0.5 * (F.binary_cross_entropy(r, torch.ones_like(r)) +
               F.binary_cross_entropy(f, torch.zeros_like(f)))
        for r, f in zip(real, fake)
    ]
    return torch.stack(per_stream).sum()


def generator_gan_loss(fake: torch.Tensor) -> torch.Tensor:
    """sum over streams of BCE(D(fake), 1); ``fake`` (S, B, 1, h, w)."""
    return torch.stack(
        [F.binary_cross_entropy(f, torch.ones_like(f)) for f in fake]).sum()


def reconstruction_loss(images: torch.Tensor, ensemble: torch.Tensor,
                        target: torch.Tensor) -> torch.Tensor:
    """sum of L1(image, target) over the S streams and the ensemble."""
    outputs = list(images) + [ensemble]
    return torch.stack([F.l1_loss(out, target) for out in outputs]).sum()


def requires_grad(module: torch.nn.Module, flag: bool) -> None:
    for parameter in module.parameters():
        parameter.requires_grad_(flag)


@MODELS.register_module()
class MultiStreamTranslator(BaseModel):
    """Conditional GAN over a multi-stream generator (TokenFusion, image
    translation): every stream of :class:`FusedMiTGenerator` is judged by
    the patch discriminator against its own source modality.

    One :meth:`train_step` (``optim_wrapper`` an ``OptimWrapperDict`` with
    ``generator`` and ``discriminator``):

    1. the generator's stream images and ensemble for the sources;
    2. discriminator step: ``loss_d`` = sum over streams of
       0.5 * (BCE(D(src, real), 1) + BCE(D(src, fake), 0)), the fakes
       detached (the reference forgot to detach them, which only wastes
       a backward pass through the generator);
    3. generator step, the discriminator frozen: ``gan_weight`` * sum over
       streams of BCE(D(src, fake), 1) + ``l1_weight`` * (sum over streams
       and the ensemble of L1(output, target)) + the fusion layers' losses
       (TokenFusion's sparsity term, weighted in the fusion config).

    Data: ``inputs`` (B, M*C, H, W) sources in [-1, 1]; every data sample
    holds the target in ``gt_image`` (C, H, W), in [-1, 1].
    Predictions (``predict``): data samples with ``pred_images``, a dict
    ``{stream name: (C, H, W), 'ensemble': (C, H, W)}`` (what the
    translation evaluators read), and ``pred_image``, the ensemble.

    Args:
        generator (dict): Config of the generator
            (:class:`FusedMiTGenerator`).
        discriminator (dict): Config of the discriminator
            (:class:`FusedMiTDiscriminator`); its ``num_streams`` is set to
            the generator's.
        stream_names (Sequence[str], optional): Names of the streams in
            ``pred_images`` and the logs (default ``m0``, ``m1``, ...).
        l1_weight (float): Weight of the L1 terms. Defaults to 100.
        gan_weight (float): Weight of the generator's GAN term.
            Defaults to 1.
        data_preprocessor (dict, optional): Defaults to mmengine's
            ``ImgDataPreprocessor`` without normalisation (it stacks the
            batch; the transforms already scale to [-1, 1]).
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 generator: dict,
                 discriminator: dict,
                 stream_names: Optional[Sequence[str]] = None,
                 l1_weight: float = 100.,
                 gan_weight: float = 1.,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor or ImgDataPreprocessor(),
            init_cfg=init_cfg)
        self.generator = MODELS.build(generator)
        streams = self.generator.num_streams
        self.discriminator = MODELS.build(
            discriminator, default_args=dict(num_streams=streams))
        if self.discriminator.num_streams != streams:
            raise ValueError(
                f'discriminator.num_streams={self.discriminator.num_streams}'
                f' but the generator has {streams} streams')
        names = tuple(stream_names or (f'm{i}' for i in range(streams)))
        if len(names) != streams:
            raise ValueError(f'{len(names)} stream_names {names} for '
                             f'{streams} streams')
        self.stream_names = names
        self.l1_weight = l1_weight
        self.gan_weight = gan_weight

    @staticmethod
    def targets(data_samples) -> torch.Tensor:
        """(B, C, H, W) targets of the data samples' ``gt_image``."""
        missing = [
            i for i, s in enumerate(data_samples)
            if getattr(s, 'gt_image', None) is None
        ]
        if missing:
            raise KeyError(f'data samples {missing} hold no gt_image (the '
                           'target image, (C, H, W) in [-1, 1])')
        return torch.stack([s.gt_image for s in data_samples])

    def train_step(self, data: dict,
                   optim_wrapper: OptimWrapperDict) -> Dict[str, torch.Tensor]:
        data = self.data_preprocessor(data, True)
        sources = data['inputs']
        target = self.targets(data['data_samples']).to(sources)
        streams = self.generator.num_streams
        g_optim = optim_wrapper['generator']
        d_optim = optim_wrapper['discriminator']

        with g_optim.optim_context(self.generator):
            images = self.generator(sources)
        with d_optim.optim_context(self.discriminator):
            real = self.discriminator(pair_inputs(sources, target, streams))
            fake = self.discriminator(
                pair_inputs(sources, images.detach(), streams))
            loss_d = discriminator_loss(real, fake)
        d_optim.update_params(loss_d)

        requires_grad(self.discriminator, False)
        try:
            with g_optim.optim_context(self.generator):
                judged = self.discriminator(
                    pair_inputs(sources, images, streams))
                losses = dict(
                    loss_gan=self.gan_weight * generator_gan_loss(judged),
                    loss_l1=self.l1_weight * reconstruction_loss(
                        images, self.generator.ensemble(images), target))
                losses.update(self.generator.fusion_loss())
                loss_g, log_vars = self.parse_losses(losses)
            g_optim.update_params(loss_g)
        finally:
            requires_grad(self.discriminator, True)
        log_vars['loss_d'] = loss_d.detach()
        return log_vars

    def forward(self,
                inputs: torch.Tensor,
                data_samples=None,
                mode: str = 'predict'):
        """``'tensor'``: stream images (S, B, C, H, W); ``'predict'``: the
        data samples with ``pred_images``. Training runs through
        :meth:`train_step` only."""
        images = self.generator(inputs)
        if mode == 'tensor':
            return images
        if mode != 'predict':
            raise ValueError(f'MultiStreamTranslator has no {mode!r} mode '
                             "('loss' is train_step's)")
        ensemble = self.generator.ensemble(images)
        for b, sample in enumerate(data_samples):
            outputs = {
                name: images[m, b]
                for m, name in enumerate(self.stream_names)
            }
            outputs['ensemble'] = ensemble[b]
            sample.set_field(outputs, 'pred_images', field_type='data')
            sample.pred_image = ensemble[b]
        return data_samples
