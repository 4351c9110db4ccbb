"""GeminiFusion (Jia et al., ICML'24) as a fusion layer."""
import torch.nn as nn
from mmseg.registry import MODELS
from torch import Tensor

from projects.fusion_math.geminifusion import GeminiFusionModule
from .base import BaseFusionLayer

# where the reference puts the module: before the attention's output
# projection in MiT, after the window attention (projection included) in
# Swin
GEMINI_POINTS = ('fuse_attention_heads', 'fuse_attention_output')


@MODELS.register_module()
class GeminiFusion(BaseFusionLayer):
    """A :class:`GeminiFusionModule` in every block it acts in: pixel-wise
    attention of each stream's token to a noised copy of itself and to a
    relation-modulated key carrying the other stream's token,
    ``z_m = s + MHA(q=s, k=[s + n_k, s ⊙ r], v=[s + n_v, t])``
    (see :mod:`projects.fusion_math.geminifusion`). Exactly two streams;
    more modalities go through an :class:`AuxiliaryHub` first. No loss
    term, no statistics.

    Parameters: ``sites.{stage}.{block}.*`` with the reference's inner
    names (``cross_attn_0_to_1``, ``cross_attn_1_to_0``,
    ``relation_judger.0.fc1`` / ``fc2``, ``k_noise``, ``v_noise``).

    Args:
        heads (int): Heads of the fusion attention (reference: 8 at every
            stage). Every stage width must be divisible by it.
        point (str): The fusion point: ``'fuse_attention_heads'`` (before
            the attention's output projection, the reference's place in
            MiT, default) or ``'fuse_attention_output'`` (after it, before
            drop-path + residual: the reference's place in Swin).
        **kwargs: :class:`BaseFusionLayer` arguments (placement included).
    """

    def __init__(self,
                 heads: int = 8,
                 point: str = 'fuse_attention_heads',
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if point not in GEMINI_POINTS:
            raise ValueError(f'GeminiFusion point must be one of '
                             f'{GEMINI_POINTS}, got {point!r}')
        self.heads = heads
        self.point = point
        self.sites = nn.ModuleDict({
            str(s):
            nn.ModuleDict({
                str(j):
                GeminiFusionModule(self.channels[s], heads, self.num_streams)
                for j in blocks
            })
            for s, blocks in self.placement.items()
        })

    def points(self):
        return frozenset((self.point, ))

    def _fuse(self, stage: int, block: int, y: Tensor) -> Tensor:
        return self.sites[str(stage)][str(block)](y)

    def fuse_attention_heads(self, stage: int, block: int,
                             y: Tensor) -> Tensor:
        if self.point != 'fuse_attention_heads':
            return y
        return self._fuse(stage, block, y)

    def fuse_attention_output(self, stage: int, block: int,
                              y: Tensor) -> Tensor:
        if self.point != 'fuse_attention_output':
            return y
        return self._fuse(stage, block, y)

    def extra_repr(self) -> str:
        return f'heads={self.heads}, point={self.point!r}'
