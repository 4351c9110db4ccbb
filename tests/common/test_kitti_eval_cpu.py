"""mmdet3d's KITTI evaluation without a GPU: the rotated BEV overlaps of
``rotate_iou_gpu_eval`` (a numba CUDA kernel) come from mmcv's CPU
``box_iou_rotated``; checked against polygon clipping, and ``kitti_eval``
runs end to end (a perfect detection scores 100 AP)."""
import numpy as np
import pytest

import projects.common.mmdet3d_compat as compat


def corners(box):
    """(4, 2) corners of ``[x, y, w, h, angle]``."""
    x, y, w, h, a = box
    c, s = np.cos(a), np.sin(a)
    local = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
    return local @ np.array([[c, s], [-s, c]]) + [x, y]


def clip(subject, clipper):
    """Sutherland-Hodgman: the part of convex polygon ``subject`` inside
    convex, counter-clockwise ``clipper``."""
    out = list(subject)
    for i in range(len(clipper)):
        a, b = clipper[i], clipper[(i + 1) % len(clipper)]
        inside = [
            ((b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]))
            >= 0 for p in out
        ]
        clipped = []
        for j, p in enumerate(out):
            q = out[(j + 1) % len(out)]
            if inside[j]:
                clipped.append(p)
            if inside[j] != inside[(j + 1) % len(out)]:
                d = np.subtract(q, p)
                e = np.subtract(b, a)
                t = ((a[0] - p[0]) * e[1] - (a[1] - p[1]) * e[0]) / (
                    d[0] * e[1] - d[1] * e[0])
                clipped.append(np.add(p, t * d))
        out = clipped
        if not out:
            return []
    return out


def area(polygon):
    if len(polygon) < 3:
        return 0.
    p = np.asarray(polygon)
    return 0.5 * abs(
        np.dot(p[:, 0], np.roll(p[:, 1], -1)) -
        np.dot(p[:, 1], np.roll(p[:, 0], -1)))


def ccw(polygon):
    p = np.asarray(polygon)
    signed = np.dot(p[:, 0], np.roll(p[:, 1], -1)) - np.dot(
        p[:, 1], np.roll(p[:, 0], -1))
    return p if signed > 0 else p[::-1]


@pytest.mark.parametrize('criterion', [-1, 0, 1, 2])
def test_cpu_overlaps_match_polygon_clipping(criterion):
    rng = np.random.default_rng(0)
    boxes = np.concatenate([
        rng.uniform(-2, 2, (6, 2)),
        rng.uniform(1, 4, (6, 2)),
        rng.uniform(-np.pi, np.pi, (6, 1))
    ], 1)
    query = np.concatenate([
        rng.uniform(-2, 2, (5, 2)),
        rng.uniform(1, 4, (5, 2)),
        rng.uniform(-np.pi, np.pi, (5, 1))
    ], 1)
    result = compat.rotate_iou_cpu_eval(boxes, query, criterion)
    assert result.shape == (6, 5) and result.dtype == np.float32
    for n, b in enumerate(boxes):
        for k, q in enumerate(query):
            inter = area(clip(ccw(corners(b)), ccw(corners(q))))
            a1, a2 = b[2] * b[3], q[2] * q[3]
            expected = {
                -1: inter / (a1 + a2 - inter),
                0: inter / a1,
                1: inter / a2
            }.get(criterion, inter)
            assert result[n, k] == pytest.approx(expected, abs=2e-4)
    assert compat.rotate_iou_cpu_eval(boxes[:0], query).shape == (0, 5)


def kitti_frame(rng, shift=0.):
    """One frame of KITTI annotations: two cars and a pedestrian."""
    location = np.stack(
        [rng.uniform(-8, 8, 3),
         np.full(3, 1.6),
         rng.uniform(8, 40, 3)], 1)
    left = rng.uniform(50, 1000, 3)
    return dict(
        name=np.array(['Car', 'Car', 'Pedestrian']),
        truncated=np.zeros(3),
        occluded=np.zeros(3, dtype=int),
        alpha=np.zeros(3),
        bbox=np.stack(
            [left, np.full(3, 150.), left + 80,
             np.full(3, 250.)], 1),
        dimensions=np.array([[4., 1.5, 1.6], [4.2, 1.5, 1.7], [0.8, 1.7,
                                                               0.6]]),
        location=location + [shift, 0., 0.],
        rotation_y=rng.uniform(-np.pi, np.pi, 3),
        score=rng.uniform(0.5, 1., 3))


def test_kitti_eval_runs_on_cpu():
    from mmdet3d.evaluation import kitti_eval
    gts = [kitti_frame(np.random.default_rng(i)) for i in range(30)]
    _, perfect = kitti_eval(gts, gts, ['Car', 'Pedestrian'])
    # (the 30 pedestrians are too few for the 41 recall points, so only the
    # 60 cars can reach 100)
    for key in ('KITTI/Car_3D_AP11_moderate_strict',
                'KITTI/Car_BEV_AP40_easy_strict',
                'KITTI/Car_3D_AP11_hard_strict'):
        assert perfect[key] == pytest.approx(100., abs=1e-3), key
    # every box shifted sideways by 0.8 m: a car's 3D IoU falls below 0.7
    # (4 m x 1.6 m footprints), while the image boxes still match
    shifted = [kitti_frame(np.random.default_rng(i), 0.8) for i in range(30)]
    _, worse = kitti_eval(gts, shifted, ['Car'])
    assert worse['KITTI/Car_3D_AP11_moderate_strict'] < 10.
    assert worse['KITTI/Car_2D_AP11_moderate_strict'] == pytest.approx(100.)


@pytest.mark.skipif(
    not __import__('numba.cuda').cuda.is_available(),
    reason='compares with the numba CUDA kernel')
def test_cpu_overlaps_match_the_cuda_kernel():
    from mmdet3d.evaluation.functional.kitti_utils.rotate_iou import \
        rotate_iou_gpu_eval
    rng = np.random.default_rng(1)
    boxes = np.concatenate([
        rng.uniform(-5, 5, (40, 2)),
        rng.uniform(1, 4, (40, 2)),
        rng.uniform(-np.pi, np.pi, (40, 1))
    ], 1).astype(np.float32)
    for criterion in (-1, 0, 1, 2):
        np.testing.assert_allclose(
            compat.rotate_iou_cpu_eval(boxes, boxes[::-1], criterion),
            rotate_iou_gpu_eval(boxes, boxes[::-1], criterion),
            atol=1e-4)
