"""Fusion layers: how the streams of a fused backbone meet.

A fused backbone (:class:`~..backbones.FusedMiT`, :class:`~..backbones.
FusedSwin`) runs the S streams of a modality stack (S*B rows, stream m at
rows m*B..(m+1)*B) through blocks with shared weights and, at fixed *fusion
points* of every block, hands the tensors to its fusion layers. A fusion
layer is a registered module chosen in the config, e.g.
``fusion=dict(type='TokenExchange', threshold=0.02)``; it decides in which
blocks it acts (``stages`` / ``blocks``) and what it does at each point. The
backbone only calls the points, so a new fusion strategy is a new layer
class and never touches a backbone.

Fusion points of block j of stage s, in the order a block calls them (all
tensors (S*B, N, C), N tokens of an H x W grid)::

    begin_block(s, j, x, hw)             the block input; returns nothing
    fuse_normed(s, j, name, y, norm)     output y of the block's LayerNorm
                                         ``name`` ('norm1', 'norm2'); norm
                                         is that ModalityLayerNorm
    fuse_attention_heads(s, j, y)        attention output before its output
                                         projection
    fuse_attention_output(s, j, y)       attention branch output before
                                         drop-path and the residual add
    end_block(s, j, x)                   the block output

Every point except ``begin_block`` returns the (fused) tensor. When the
backbone merges a block's tokens (``FusedMiT(token_merge=...)``), it calls
``merge_tokens(s, j, merge)`` after ``fuse_normed('norm1')``: the tensors of
``fuse_attention_heads`` and ``fuse_attention_output`` are then the merged
tokens (S*B, N', C) of the shared merge map ``merge``
(:class:`~projects.fusion_math.token_merging.GridMerge`), still aligned
across streams; a layer that keeps per-token state from ``begin_block``
merges it there. A backbone
declares the points it hosts; building a layer that needs a point its
backbone does not host is an error that names both.

What a layer computes for the loss (e.g. a sparsity term) and for logging
is recorded during the forward and returned by :meth:`BaseFusionLayer.loss`
and :meth:`BaseFusionLayer.statistics`; :meth:`BaseFusionLayer.
begin_forward` clears the record at the start of every backbone forward.
"""
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple, Union

import torch.nn as nn
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor

# every fusion point, in the order a block calls them
FUSION_POINTS = ('begin_block', 'fuse_normed', 'fuse_attention_heads',
                 'fuse_attention_output', 'end_block')
Placement = Union[str, Dict[int, Sequence[int]]]


class BaseFusionLayer(BaseModule):
    """Base class of the fusion layers (see the module doc).

    A subclass overrides the fusion points it needs (the others pass their
    tensor through) and, if it adds to the loss or logs, :meth:`loss` and
    :meth:`statistics`.

    Args:
        num_streams (int): S, the streams of the modality stack (one per
            modality, or 2 behind an :class:`AuxiliaryHub`). Set by the
            backbone.
        channels (Sequence[int]): Channels of every stage. Set by the
            backbone.
        depths (Sequence[int]): Blocks of every stage. Set by the backbone.
        stages (Sequence[int], optional): Stages the layer acts in.
            Defaults to all.
        blocks (str | dict): In those stages, ``'all'`` blocks, the
            ``'last'`` block only, or ``{stage: [block indices]}``.
            Defaults to ``'all'``.
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self,
                 num_streams: int,
                 channels: Sequence[int],
                 depths: Sequence[int],
                 stages: Optional[Sequence[int]] = None,
                 blocks: Placement = 'all',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_streams < 2:  # nothing to fuse
            raise ValueError(f'{type(self).__name__} needs at least 2 '
                             f'streams, got {num_streams}')
        if len(channels) != len(depths):
            raise ValueError(f'{len(channels)} stage widths for '
                             f'{len(depths)} stages')
        self.num_streams = num_streams
        self.channels = tuple(channels)
        self.depths = tuple(depths)
        stages = tuple(range(len(depths)) if stages is None else stages)
        unknown = sorted(set(stages) - set(range(len(depths))))
        if unknown:
            raise ValueError(f'{type(self).__name__}: stages {unknown} out '
                             f'of range for {len(depths)} stages')
        #: stage -> indices of the blocks the layer acts in
        self.placement: Dict[int, Tuple[int, ...]] = {}
        for s in sorted(stages):
            chosen = self._blocks_of_stage(s, depths[s], blocks)
            if chosen:
                self.placement[s] = chosen

    def _blocks_of_stage(self, stage: int, depth: int,
                         blocks: Placement) -> Tuple[int, ...]:
        if blocks == 'all':
            return tuple(range(depth))
        if blocks == 'last':
            return (depth - 1, )
        if isinstance(blocks, dict):
            chosen = tuple(blocks.get(stage, ()))
            bad = [j for j in chosen if not 0 <= j < depth]
            if bad:
                raise ValueError(f'{type(self).__name__}: blocks {bad} out '
                                 f'of range for stage {stage} of {depth} '
                                 'blocks')
            return chosen
        raise ValueError(f"{type(self).__name__}: blocks must be 'all', "
                         f"'last' or a dict, got {blocks!r}")

    def acts_in(self, stage: int, block: int) -> bool:
        """Whether the layer fuses block ``block`` of stage ``stage``."""
        return block in self.placement.get(stage, ())

    @property
    def placed_blocks(self) -> List[Tuple[int, int]]:
        """(stage, block) of every block the layer acts in, in order."""
        return [(s, j) for s, blocks in self.placement.items() for j in blocks]

    def points(self) -> FrozenSet[str]:
        """The fusion points this layer needs its backbone to call: the
        ones its class overrides."""
        return frozenset(
            name for name in FUSION_POINTS
            if getattr(type(self), name) is not getattr(BaseFusionLayer, name))

    # -- fusion points (identity here) ---------------------------------
    def begin_block(self, stage: int, block: int, x: Tensor,
                    hw: Tuple[int, int]) -> None:
        """See the module doc."""

    def fuse_normed(self, stage: int, block: int, name: str, y: Tensor,
                    norm: nn.Module) -> Tensor:
        return y

    def fuse_attention_heads(self, stage: int, block: int,
                             y: Tensor) -> Tensor:
        return y

    def fuse_attention_output(self, stage: int, block: int,
                              y: Tensor) -> Tensor:
        return y

    def end_block(self, stage: int, block: int, x: Tensor) -> Tensor:
        return x

    def merge_tokens(self, stage: int, block: int, merge) -> None:
        """The block merges its tokens with ``merge`` (see the module doc);
        a layer without per-token state has nothing to do."""

    # -- what the layer recorded in the last forward --------------------
    def begin_forward(self) -> None:
        """Called by the backbone before every forward: forget what the
        previous forward recorded."""

    def loss(self) -> Dict[str, Tensor]:
        """Loss terms of the last forward (e.g. ``loss_sparsity``)."""
        return {}

    def statistics(self, stream_names: Sequence[str]) -> Dict[str, Tensor]:
        """Detached statistics of the last forward, keyed
        ``'<group>/<stream>/<statistic>'``, for logging."""
        return {}


class FusionSite:
    """The fusion layers acting in one block, with the block's (stage,
    index) bound: what a block calls at its fusion points. A plain object
    (not a module), so blocks can hold it without owning the layers."""

    __slots__ = ('layers', 'stage', 'block')

    def __init__(self, layers: Sequence[BaseFusionLayer], stage: int,
                 block: int) -> None:
        self.layers = tuple(layers)
        self.stage = stage
        self.block = block

    def begin_block(self, x: Tensor, hw: Tuple[int, int]) -> None:
        for layer in self.layers:
            layer.begin_block(self.stage, self.block, x, hw)

    def fuse_normed(self, name: str, y: Tensor, norm: nn.Module) -> Tensor:
        for layer in self.layers:
            y = layer.fuse_normed(self.stage, self.block, name, y, norm)
        return y

    def fuse_attention_heads(self, y: Tensor) -> Tensor:
        for layer in self.layers:
            y = layer.fuse_attention_heads(self.stage, self.block, y)
        return y

    def fuse_attention_output(self, y: Tensor) -> Tensor:
        for layer in self.layers:
            y = layer.fuse_attention_output(self.stage, self.block, y)
        return y

    def end_block(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer.end_block(self.stage, self.block, x)
        return x

    def merge_tokens(self, merge) -> None:
        for layer in self.layers:
            layer.merge_tokens(self.stage, self.block, merge)


def build_seg_module(cfg: dict, **default_args) -> nn.Module:
    """Build a module of this package (a fusion layer, a hub) from mmseg's
    registry whatever the process's default scope: a process that built an
    mmdet3d model earlier may still have mmdet3d's scope current, where
    these names are unknown. A ``_scope_`` in ``cfg`` wins."""
    cfg = dict(cfg)
    cfg.setdefault('_scope_', 'mmseg')
    return MODELS.build(cfg, default_args=default_args)


class FusionLayers(nn.ModuleList):
    """The fusion layers of one backbone, built from its ``fusion`` config
    (None, one dict or a list of dicts, applied in list order at every
    point).

    Args:
        cfg (dict | list[dict] | None): Fusion layer config(s).
        host (str): Name of the backbone, for error messages.
        hosted_points (Sequence[str]): Fusion points the backbone calls.
        **default_args: Set by the backbone for every layer
            (``num_streams``, ``channels``, ``depths``).
    """

    def __init__(self, cfg: Union[None, dict, Sequence[dict]], host: str,
                 hosted_points: Sequence[str], **default_args) -> None:
        cfgs = [] if cfg is None else [cfg] if isinstance(cfg,
                                                          dict) else list(cfg)
        super().__init__(build_seg_module(c, **default_args) for c in cfgs)
        for layer in self:
            if not isinstance(layer, BaseFusionLayer):
                raise TypeError(f'{host}: fusion layer {type(layer).__name__}'
                                ' is not a BaseFusionLayer')
            missing = sorted(layer.points() - set(hosted_points))
            if missing:
                raise ValueError(
                    f'{type(layer).__name__} needs the fusion point(s) '
                    f'{missing}, which {host} does not host (it calls '
                    f'{sorted(hosted_points)})')

    def site(self, stage: int, block: int) -> FusionSite:
        """The layers acting in block ``block`` of stage ``stage``."""
        return FusionSite(
            [layer for layer in self if layer.acts_in(stage, block)], stage,
            block)

    @property
    def blocks(self) -> List[Tuple[int, int]]:
        """(stage, block) of every block some layer acts in, in order."""
        return sorted({site for layer in self for site in layer.placed_blocks})

    def begin_forward(self) -> None:
        for layer in self:
            layer.begin_forward()

    def loss(self) -> Dict[str, Tensor]:
        losses: Dict[str, Tensor] = {}
        for layer in self:
            for key, value in layer.loss().items():
                if key in losses:
                    raise KeyError(f'two fusion layers return the loss {key}')
                losses[key] = value
        return losses

    def statistics(self, stream_names: Sequence[str]) -> Dict[str, Tensor]:
        stats: Dict[str, Tensor] = {}
        for layer in self:
            stats.update(layer.statistics(stream_names))
        return stats


class HostsFusionLayers:
    """What a fused backbone (holding its layers in ``fusion_layers``)
    offers its segmentor after a forward."""

    fusion_layers: FusionLayers

    def fusion_loss(self) -> Dict[str, Tensor]:
        """Loss terms the fusion layers recorded in the last forward."""
        return self.fusion_layers.loss()

    def fusion_statistics(self,
                          stream_names: Sequence[str]) -> Dict[str, Tensor]:
        """Statistics the fusion layers recorded in the last forward."""
        return self.fusion_layers.statistics(stream_names)
