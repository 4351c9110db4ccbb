"""TokenFusion's image-to-image translation networks, built from the fused
MiT of the segmentation package: a U-shaped generator and a patch
discriminator over the modality stack.

Generator (the reference's ``gen_b2`` at the default arguments): a
5-stage :class:`FusedMiT` encoder (3x3 stride-2 overlapping patch
embeddings, 256 -> 128 -> 64 -> 32 -> 16 -> 8 pixels, channels 64 .. 1024)
with the fusion layers of its ``fusion`` config (TokenFusion: token
exchange in the last block of every stage), then 4 decoder stages, each
``PixelShuffle(2)`` + 1x1 conv to the next width, plus the matching encoder
stage's output as a skip, MiT blocks without fusion and a per-stream
LayerNorm; finally ``PixelShuffle(2)`` to the input size, 1x1 convs to
``out_channels`` and tanh. Every stream (one per input modality) produces
an image; the ensemble is their softmax(alpha)-weighted sum.

Discriminator (``dis_b2``): the same 5-stage encoder without fusion on a
source modality concatenated with a real or generated target (6 channels
per stream), a 1x1 conv to one channel and a sigmoid: an (H/32, W/32) patch
map per stream.

Weights are shared across streams, LayerNorms are per stream (TokenFusion
Table 8's sharing variants are the ``share_*`` arguments).
"""
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmseg.registry import MODELS

from projects.fusion_math.modality_layers import (ModalityConv2d,
                                                  ModalityLayerNorm)
from projects.multimodal_seg.models.backbones.fused_mit import (FusedBlock,
                                                                FusedMiT)
from projects.multimodal_seg.models.fusion_layers.base import FusionSite

# the reference's generator / discriminator encoder (gen_b2, dis_b2)
ENCODER = dict(
    embed_dims=64,
    num_layers=(3, 4, 4, 6, 3),
    num_heads=(1, 2, 4, 8, 16),
    patch_sizes=(3, 3, 3, 3, 3),
    strides=(2, 2, 2, 2, 2),
    sr_ratios=(16, 8, 4, 2, 1))
# blocks of the 4 decoder stages (widths 512, 256, 128, 64)
DECODER_DEPTHS = (6, 4, 4, 3)


class PatchUpsample(nn.Module):
    """``PixelShuffle(2)`` then a 1x1 conv from C/4 to ``out_channels``:
    (S*B, C, H, W) -> (S*B, out_channels, 2H, 2W). (The reference's
    upsampler also owns a LayerNorm that it never applies; there is none
    here.)"""

    def __init__(self, m: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        if in_channels % 4:
            raise ValueError(f'PixelShuffle(2) needs channels divisible by '
                             f'4, got {in_channels}')
        self.shuffle = nn.PixelShuffle(2)
        self.proj = ModalityConv2d(m, in_channels // 4, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.shuffle(x))


def encoder(num_modalities: int, in_channels: int, fusion, share_attn: bool,
            share_mlp: bool, share_norms: bool, drop_path_rate: float,
            num_layers: Sequence[int], embed_dims: int) -> FusedMiT:
    """The 5-stage fused MiT of both networks."""
    return FusedMiT(
        num_modalities=num_modalities,
        in_channels=in_channels,
        **dict(ENCODER, num_layers=tuple(num_layers), embed_dims=embed_dims),
        drop_path_rate=drop_path_rate,
        out_indices=tuple(range(len(num_layers))),
        fusion=fusion,
        share_attn=share_attn,
        share_mlp=share_mlp,
        share_norms=share_norms)


@MODELS.register_module()
class FusedMiTGenerator(BaseModule):
    """U-shaped fused MiT generator (TokenFusion, image translation).

    Input (B, M * in_channels, H, W): the source modalities concatenated
    along channels, H and W multiples of 32. Output of :meth:`forward`:
    the stream images (S, B, out_channels, H, W) in (-1, 1); the ensemble is
    :meth:`ensemble`.

    Args:
        num_modalities (int): M input modalities. Defaults to 2.
        in_channels (int): Channels of one modality. Defaults to 3.
        out_channels (int): Channels of the target. Defaults to 3.
        embed_dims (int): Width of the first stage; the stages have 1, 2,
            4, 8, 16 times it. Defaults to the reference's 64.
        encoder_depths (Sequence[int]): Blocks of the 5 encoder stages.
            Defaults to the reference's (3, 4, 4, 6, 3).
        decoder_depths (Sequence[int]): Blocks of the 4 decoder stages.
            Defaults to the reference's (6, 4, 4, 3).
        fusion (dict | list[dict], optional): Fusion layer config(s) of
            the encoder (see the segmentation package's fusion layers).
            Defaults to TokenFusion's: token exchange at θ = 0.02 in the
            last block of every stage. None: streams meet only in the
            ensemble.
        share_attn, share_mlp, share_norms (bool): Weight sharing across
            streams (TokenFusion Table 8). Defaults: shared attention and
            MLP weights, per-stream LayerNorms.
        drop_path_rate (float): Stochastic depth of the encoder.
            Defaults to 0.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 num_modalities: int = 2,
                 in_channels: int = 3,
                 out_channels: int = 3,
                 embed_dims: int = ENCODER['embed_dims'],
                 encoder_depths: Sequence[int] = ENCODER['num_layers'],
                 decoder_depths: Sequence[int] = DECODER_DEPTHS,
                 fusion: Union[None, dict, Sequence[dict]] = dict(
                     type='TokenExchange', threshold=0.02, blocks='last'),
                 share_attn: bool = True,
                 share_mlp: bool = True,
                 share_norms: bool = False,
                 drop_path_rate: float = 0.,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(encoder_depths) != 5 or len(decoder_depths) != 4:
            raise ValueError('the generator has 5 encoder and 4 decoder '
                             f'stages, got depths {tuple(encoder_depths)} '
                             f'and {tuple(decoder_depths)}')
        self.encoder = encoder(num_modalities, in_channels, fusion, share_attn,
                               share_mlp, share_norms, drop_path_rate,
                               encoder_depths, embed_dims)
        self.num_modalities = num_modalities
        self.num_streams = streams = self.encoder.num_streams
        dims = self.encoder.dims  # 64, 128, 256, 512, 1024
        heads = ENCODER['num_heads']
        self.upsamples = nn.ModuleList()
        self.decoder = nn.ModuleList()
        self.decoder_norms = nn.ModuleList()
        for j, depth in enumerate(decoder_depths):
            s = len(dims) - 2 - j  # the encoder stage of the skip
            self.upsamples.append(PatchUpsample(streams, dims[s + 1], dims[s]))
            self.decoder.append(
                nn.ModuleList([
                    FusedBlock(streams, dims[s], heads[s],
                               ENCODER['sr_ratios'][s], 4, True, 0., 0., 0.,
                               share_attn, share_mlp, share_norms)
                    for _ in range(depth)
                ]))
            self.decoder_norms.append(
                ModalityLayerNorm(streams, dims[s], shared=share_norms))
        self.final_upsample = PatchUpsample(streams, dims[0], dims[0])
        self.project = ModalityConv2d(streams, dims[0], out_channels, 1)
        # softmax(alpha) weighs the streams' images in the ensemble
        self.alpha = nn.Parameter(torch.ones(streams))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, M*C_in, H, W) -> stream images (S, B, C_out, H, W)."""
        skips = self.encoder(x)
        y = skips[-1]
        no_fusion = FusionSite((), -1, -1)
        for j, (upsample, blocks, norm) in enumerate(
                zip(self.upsamples, self.decoder, self.decoder_norms)):
            y = upsample(y) + skips[-2 - j]
            sb, c, h, w = y.shape
            tokens = y.flatten(2).transpose(1, 2)
            for block in blocks:
                tokens = block(tokens, (h, w), no_fusion)
            y = norm(tokens).transpose(1, 2).reshape(sb, c, h, w)
        images = torch.tanh(self.project(self.final_upsample(y)))
        return images.reshape(self.num_streams, -1, *images.shape[1:])

    def ensemble(self, images: torch.Tensor) -> torch.Tensor:
        """(S, B, C, H, W) -> (B, C, H, W): sum_m softmax(alpha)_m *
        detach(image_m); gradients reach only alpha."""
        weights = self.alpha.softmax(0).view(-1, 1, 1, 1, 1)
        return (weights * images.detach()).sum(0)

    def fusion_loss(self) -> dict:
        """The fusion layers' loss terms (TokenFusion's sparsity loss)."""
        return self.encoder.fusion_loss()

    def init_weights(self) -> None:
        super().init_weights()
        self.encoder.init_weights()


@MODELS.register_module()
class FusedMiTDiscriminator(BaseModule):
    """Patch discriminator over the streams (TokenFusion, translation).

    Input (B, S * (C_src + C_tgt), H, W): for every stream, its source
    modality concatenated with a real or generated target. Output: the
    probability that the target is real, (S, B, 1, H / 32, W / 32).

    Args:
        num_streams (int): S. Defaults to 2.
        in_channels (int): C_src + C_tgt of one stream. Defaults to 6.
        embed_dims (int): Width of the first stage, as the generator's.
        depths (Sequence[int]): Blocks of the 5 stages. Defaults to the
            reference's (3, 4, 4, 6, 3).
        share_attn, share_mlp, share_norms (bool): As the generator's.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 num_streams: int = 2,
                 in_channels: int = 6,
                 embed_dims: int = ENCODER['embed_dims'],
                 depths: Sequence[int] = ENCODER['num_layers'],
                 share_attn: bool = True,
                 share_mlp: bool = True,
                 share_norms: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_streams = num_streams
        self.encoder = encoder(num_streams, in_channels, None, share_attn,
                               share_mlp, share_norms, 0., depths, embed_dims)
        self.encoder.out_indices = (len(depths) - 1, )
        self.head = ModalityConv2d(num_streams, self.encoder.dims[-1], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.sigmoid(self.head(self.encoder(x)[-1]))
        return y.reshape(self.num_streams, -1, *y.shape[1:])

    def init_weights(self) -> None:
        super().init_weights()
        self.encoder.init_weights()


def pair_inputs(sources: torch.Tensor, target: torch.Tensor,
                num_streams: int) -> torch.Tensor:
    """The discriminator's input: stream m's source modality concatenated
    with its target. ``sources`` (B, S*C_src, H, W); ``target``
    (S, B, C_tgt, H, W) (one image per stream) or (B, C_tgt, H, W) (the
    same for every stream) -> (B, S*(C_src + C_tgt), H, W)."""
    per_source = sources.chunk(num_streams, dim=1)
    if target.dim() == 4:
        target = target.expand(num_streams, *target.shape)
    if target.shape[0] != num_streams:
        raise ValueError(f'{target.shape[0]} target images for '
                         f'{num_streams} streams')
    return torch.cat([
        torch.cat([source, tgt], dim=1)
        for source, tgt in zip(per_source, target)
    ],
                     dim=1)
