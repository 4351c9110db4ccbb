"""Where the seed-key fusion takes the image: per decoder layer, the
replaced fraction of the seeds inside an image, split by the ground-truth
box each seed lies in (its class) or the background."""
from typing import Dict, List, Sequence

import torch
from torch import Tensor

BACKGROUND = 'background'


def seed_regions(seed_xyz: Tensor, boxes, labels: Tensor,
                 class_names: Sequence[str]) -> List[str]:
    """The region of each seed of one sample: the class name of the first
    ground-truth box that holds it, else :data:`BACKGROUND`.

    Args:
        seed_xyz (Tensor): (S, 3) in the boxes' frame.
        boxes: ``BaseInstance3DBoxes`` of the sample (K boxes).
        labels (Tensor): (K, ) class indices.
        class_names (Sequence[str]): names of the label indices.
    """
    if len(boxes) == 0:
        return [BACKGROUND] * seed_xyz.shape[0]
    inside = boxes.points_in_boxes_all(seed_xyz).bool()  # (S, K)
    first = inside.float().argmax(dim=1)
    return [
        class_names[int(labels[first[i]])] if inside[i].any() else BACKGROUND
        for i in range(seed_xyz.shape[0])
    ]


class SeedRegionCounter:
    """Accumulates, per decoder layer and region, the seeds inside an image
    (``visible``), those replaced and their summed score.

    Args:
        threshold (float): a visible seed scoring below it counts as
            replaced (θ for the hard rules, 0.5 for the soft gate).
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.counts: Dict[int, Dict[str, List[float]]] = {}

    def add(self, layer: int, regions: Sequence[str], scores: Tensor,
            valid: Tensor) -> None:
        """One sample's seeds: ``regions`` (S, ), scores and valid (S, )."""
        table = self.counts.setdefault(layer, {})
        for region, score, visible in zip(regions, scores.tolist(),
                                          valid.tolist()):
            if not visible:
                continue
            row = table.setdefault(region, [0, 0, 0.])
            row[0] += 1
            row[1] += score < self.threshold
            row[2] += score

    def summary(self,
                groups: Dict[str, Sequence[str]] = None) -> Dict[str, dict]:
        """``{'decoder<i>': {group: {'visible', 'replaced', 'score_mean'}}}``
        with ``groups`` mapping a group name to the regions it pools
        (default: every region on its own, plus ``'all'``)."""
        out = {}
        for layer, table in sorted(self.counts.items()):
            pools = dict(groups) if groups else {r: [r] for r in table}
            pools.setdefault('all', list(table))
            layer_out = {}
            for name, regions in pools.items():
                rows = [table[r] for r in regions if r in table]
                visible = sum(r[0] for r in rows)
                layer_out[name] = dict(
                    visible=int(visible),
                    replaced=(sum(r[1] for r in rows) /
                              visible if visible else float('nan')),
                    score_mean=(sum(r[2] for r in rows) /
                                visible if visible else float('nan')))
            out[f'decoder{layer}'] = layer_out
        return out


def counting_threshold(seed_fusion) -> float:
    """The score below which a visible seed counts as replaced."""
    return 0.5 if seed_fusion.substitution == 'soft_gate' else float(
        seed_fusion.threshold)


def collect_seed_statistics(model,
                            batches,
                            class_names: Sequence[str],
                            groups=None) -> Dict[str, dict]:
    """Run ``model`` (a TokenFusionGroupFree3D in eval mode) over
    ``batches`` (dataloader batches of a test split whose samples carry
    ``eval_ann_info``) and count where it replaces seeds; see
    :meth:`SeedRegionCounter.summary`."""
    counter = SeedRegionCounter(counting_threshold(model.seed_fusion))
    captured = {}

    def keep_seeds(module, args, out):
        captured['xyz'] = out['fp_xyz'][-1]

    def keep_scores(module, args, out):
        captured.setdefault('layers', []).append((args[0], args[3], out[1]))

    hooks = [
        model.backbone.register_forward_hook(keep_seeds),
        model.seed_fusion.register_forward_hook(keep_scores)
    ]
    try:
        for batch in batches:
            captured.clear()
            with torch.no_grad():
                model.test_step(batch)
            for b, sample in enumerate(batch['data_samples']):
                ann = sample.eval_ann_info
                if ann is None or 'gt_bboxes_3d' not in ann:
                    raise KeyError(
                        'the test samples carry no eval_ann_info with '
                        "'gt_bboxes_3d': use a split with annotations")
                regions = seed_regions(captured['xyz'][b].cpu(),
                                       ann['gt_bboxes_3d'],
                                       torch.as_tensor(ann['gt_labels_3d']),
                                       class_names)
                for layer, valid, scores in captured['layers']:
                    counter.add(layer, regions, scores[b].cpu(),
                                valid[b].cpu())
    finally:
        for hook in hooks:
            hook.remove()
    return counter.summary(groups)
