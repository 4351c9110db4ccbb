"""``make demo-3d``: points-only GroupFree3D against TokenFusion (points +
image) on the synthetic indoor scenes, with the standard ``tools/train.py``
/ ``tools/test.py`` on CPU, over one or more training seeds: one table of
mean ± std (mAP@0.25 / @0.5 and every class's AP@0.25), where each fusion
model replaces seeds (``seed_fusion_statistics.py``), and the boxes of the
points-only model, TokenFusion's reference rule and the soft gate drawn on
one validation image.

    python tools/run_demo_3d.py [--seeds 0 1 2] [--models headline|all|KEY..]

In the synthetic scenes 'table' and 'desk' share one shape and size
distribution and differ only by their colour in the image, so points alone
cannot tell them apart. Logs, checkpoints and drawings are in
``work_dirs/demo_3d/``.
"""
import argparse
import json
import os
import os.path as osp
import pickle
import statistics
import sys
import time

import cv2
import numpy as np

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from tools.run_demo import DEMO_THREADS, model_dir, train_and_test

POINTS_CONFIG = 'configs/groupfree3d/groupfree3d_tiny_1xb8-24e_synthetic-3d.py'
FUSION_CONFIG = ('configs/tokenfusion3d/tokenfusion3d_groupfree3d-tiny_'
                 'vit-4x64_1xb8-24e_synthetic-3d.py')
SOFT_GATE_CONFIG = ('configs/tokenfusion3d/tokenfusion3d-softgate_groupfree3d-'
                    'tiny_vit-4x64_1xb8-24e_synthetic-3d.py')
MERGE_CONFIG = ('configs/tokenfusion3d/tokenfusion3d-merge-r0.5_groupfree3d-'
                'tiny_vit-4x64_1xb8-24e_synthetic-3d.py')
# key: (row name, config, --cfg-options of the training); the drawn models
# take none (the drawing builds the model from the config alone)
MODELS = {
    'points': ('GroupFree3D points-only', POINTS_CONFIG, ()),
    'faithful': ('TokenFusion, reference rule', FUSION_CONFIG, ()),
    'soft_gate': ('TokenFusion, soft gate', SOFT_GATE_CONFIG, ()),
    'target_ratio':
    ('TokenFusion, soft gate, target ratio 0.5', SOFT_GATE_CONFIG,
     ('model.sparsity_target_ratio=0.5', 'model.sparsity_weight=10.0')),
    'straight_through': ('TokenFusion, straight-through', FUSION_CONFIG,
                         ('model.fusion.substitution=straight_through', )),
    'replace_all': ('control: θ=1, every seed replaced', FUSION_CONFIG,
                    ('model.fusion.threshold=1.0', )),
    'no_fusion': ('control: θ=0, λ=0, no fusion', FUSION_CONFIG,
                  ('model.fusion.threshold=0.0', 'model.sparsity_weight=0.0')),
    'token_merge':
    ('TokenFusion, reference rule, ViT token merging r=0.5', MERGE_CONFIG, ()),
}
# Over 3 seeds the soft gate and the reference rule both beat points only
# by more than a standard deviation without losing any class by more than
# 2 AP; the soft gate is the demo's fusion variant, the reference rule is
# reported and drawn beside it (docs/tokenfusion_3d.md).
HEADLINE = ('points', 'faithful', 'soft_gate')
DRAWN = ('points', 'faithful', 'soft_gate')
DATA_ROOT = osp.join(REPO_ROOT, 'data', 'synthetic_indoor')
CLASSES = ('bed', 'table', 'chair', 'desk', 'bookshelf')
PAIR = ('table', 'desk')
# regions of the replaced-fraction table: colour decides / geometry decides
GROUPS = {
    'table+desk': ['table', 'desk'],
    'chair+bookshelf': ['chair', 'bookshelf'],
    'background': ['background']
}


def run_name(key, seed):
    return f'{MODELS[key][0]} seed {seed}'


def mean_std(values):
    """'m ± s' in percent (s: sample std over seeds; none for one seed)."""
    values = [100 * v for v in values]
    if len(values) == 1:
        return f'{values[0]:.2f}'
    return f'{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}'


def format_table(results):
    """results: {key: [metrics of each seed]} -> markdown table."""
    columns = [('mAP@0.25', 'mAP_0.25'),
               ('mAP@0.5', 'mAP_0.50')] + [(name, f'{name}_AP_0.25')
                                           for name in CLASSES]
    lines = [
        '| Model | ' + ' | '.join(c for c, _ in columns) + ' |',
        '|---' * (len(columns) + 1) + '|'
    ]
    for key, runs in results.items():
        cells = [mean_std([m[metric] for m in runs]) for _, metric in columns]
        lines.append(f'| {MODELS[key][0]} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def format_replacement(statistics_by_key):
    """{key: [summary of each seed]} -> markdown: replaced % per decoder
    layer and region, mean over seeds."""
    lines = [
        '| Model | layer | ' + ' | '.join(GROUPS) + ' | all |',
        '|---|---|' + '---|' * (len(GROUPS) + 1)
    ]
    for key, summaries in statistics_by_key.items():
        for layer in summaries[0]:
            cells = [
                mean_std([s[layer][g]['replaced'] for s in summaries])
                for g in list(GROUPS) + ['all']
            ]
            lines.append(f'| {MODELS[key][0]} | {layer} | ' +
                         ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def replacement_statistics(key, checkpoint, out, threads):
    """seed_fusion_statistics.py on one fusion run's checkpoint."""
    from tools.run_demo import run
    _, config, options = MODELS[key]
    command = [
        sys.executable, 'tools/analysis_tools/seed_fusion_statistics.py',
        config, checkpoint, '--out', out, '--work-dir',
        osp.dirname(out)
    ] + [f'--group={g}={",".join(r)}' for g, r in GROUPS.items()]
    if options:
        command += ['--cfg-options', *options]
    run(command, out + '.log', threads)
    with open(out) as f:
        return json.load(f)


def titled(image, title):
    bar = np.full((24, image.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, title, (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0),
                1, cv2.LINE_AA)
    return np.vstack([bar, image])


def draw_ground_truth(scene: str):
    """The annotated boxes of a validation scene, drawn as the demo draws
    predictions."""
    from mmdet3d.structures import DepthInstance3DBoxes

    from projects.multimodal_det3d.apis import draw_boxes_3d
    from projects.multimodal_det3d.datasets.synthetic_indoor import (
        SUNRGBD_CLASSES, SYNTHETIC_CLASSES)
    with open(osp.join(DATA_ROOT, 'synthetic_infos_val.pkl'), 'rb') as f:
        entries = pickle.load(f)['data_list']
    entry = next(e for e in entries
                 if e['lidar_points']['lidar_path'] == f'{scene}.bin')
    boxes = DepthInstance3DBoxes(
        np.array([i['bbox_3d'] for i in entry['instances']], np.float32),
        origin=(0.5, 0.5, 0.5))
    # the infos use SUN RGB-D's ids, the demo models the 5 scene classes
    labels = np.array([
        SYNTHETIC_CLASSES.index(SUNRGBD_CLASSES[i['bbox_label_3d']])
        for i in entry['instances']
    ])
    image = cv2.imread(osp.join(DATA_ROOT, 'images', f'{scene}.jpg'))
    depth2img = np.array(entry['images']['CAM0']['depth2img'], np.float32)
    # the synthetic calibration is SUN RGB-D's: MATLAB 1-based pixels
    return draw_boxes_3d(
        image, boxes, labels, SYNTHETIC_CLASSES, depth2img, pixel_origin=1.0)


def draw_scene(work_root, scene: int, score_thr: float, seed: int):
    """Ground truth and the drawn models' boxes (one per object) on
    validation scene ``scene``, side by side."""
    sys.path.insert(0, osp.join(REPO_ROOT, 'demo'))
    import multimodal_3d_demo
    name = f'{scene:06d}'
    panels = [titled(draw_ground_truth(name), 'ground truth')]
    for key in DRAWN:
        row, config, _ = MODELS[key]
        work_dir = model_dir(work_root, run_name(key, seed))
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            checkpoint = f.read().strip()
        args = [
            osp.join(DATA_ROOT, 'points', f'{name}.bin'),
            osp.join(DATA_ROOT, 'images', f'{name}.jpg'),
            osp.join(DATA_ROOT, 'synthetic_infos_val.pkl'), config, checkpoint,
            '--out-file',
            osp.join(work_dir, f'boxes_{name}.png'), '--score-thr',
            str(score_thr), '--agnostic-nms', '0.25'
        ]
        _, drawn = multimodal_3d_demo.main(args)
        panels.append(titled(drawn, row))
    return np.hstack(panels)


def draw_predictions(work_root, scenes, score_thr: float, seed: int) -> str:
    """One row per scene: ground truth | each of :data:`DRAWN`."""
    out = osp.join(work_root, 'boxes_validation.png')
    cv2.imwrite(
        out,
        np.vstack([draw_scene(work_root, s, score_thr, seed) for s in scenes]))
    return out


def parse_models(values):
    if values in (['headline'], None):
        return list(HEADLINE)
    if values == ['all']:
        return list(MODELS)
    unknown = set(values) - set(MODELS)
    if unknown:
        raise SystemExit(f'--models: unknown {sorted(unknown)}; choose from '
                         f'headline, all or {list(MODELS)}')
    return list(dict.fromkeys(values))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--work-dir',
        default=osp.join(REPO_ROOT, 'work_dirs', 'demo_3d'),
        help='where the models, logs and drawings go')
    parser.add_argument(
        '--seeds',
        type=int,
        nargs='+',
        default=[0],
        help='training seeds of every model (default: 0)')
    parser.add_argument(
        '--models',
        nargs='+',
        help=f'headline (default: {", ".join(HEADLINE)}), all, or keys '
        f'of {list(MODELS)}')
    parser.add_argument(
        '--scene',
        type=int,
        default=200,
        help='validation scene drawn (file index; validation starts at 200)')
    parser.add_argument('--score-thr', type=float, default=0.3)
    parser.add_argument(
        '--threads',
        type=int,
        default=DEMO_THREADS,
        help='OpenMP / MKL threads of every tool (default: %(default)s)')
    args = parser.parse_args(argv)
    keys = parse_models(args.models)
    os.makedirs(args.work_dir, exist_ok=True)
    start = time.time()
    results, replaced = {}, {}
    for seed in args.seeds:  # seed-major: every model has the same seeds
        for key in keys:
            _, config, options = MODELS[key]
            name = run_name(key, seed)
            results.setdefault(key, []).append(
                train_and_test(
                    name,
                    config,
                    args.work_dir,
                    show=False,
                    seed=seed,
                    threads=args.threads,
                    options=options))
            if config != POINTS_CONFIG:
                work_dir = model_dir(args.work_dir, name)
                with open(osp.join(work_dir, 'last_checkpoint')) as f:
                    checkpoint = f.read().strip()
                replaced.setdefault(key, []).append(
                    replacement_statistics(
                        key, checkpoint,
                        osp.join(work_dir, 'seed_statistics.json'),
                        args.threads))
    drawing = None
    if all(key in keys for key in DRAWN):
        drawing = draw_predictions(args.work_dir, [args.scene], args.score_thr,
                                   args.seeds[0])
    seeds = ', '.join(map(str, args.seeds))
    report = (f'Synthetic indoor validation set, 50 scenes, training seeds '
              f'{seeds} (mean ± std over seeds), AP@0.25 per class:\n\n'
              f'{format_table(results)}\n')
    if replaced:
        report += ('\nVisible seeds replaced by the image, per decoder '
                   'layer and region (%):\n\n'
                   f'{format_replacement(replaced)}\n')
    print(f'\n{report}\n({time.time() - start:.0f} s)')
    if drawing:
        print(f'Predicted boxes (score >= {args.score_thr}): {drawing}')
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(report)
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(
            dict(seeds=args.seeds, metrics=results, replaced=replaced),
            f,
            indent=1)


if __name__ == '__main__':
    main()
