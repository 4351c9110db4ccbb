"""Image-quality metrics of the translation task: the NumPy / SciPy
functions against direct computations written here, the FID Inception-v3
and the feature extractor, the reference's matplotlib rendering, and the
evaluators' ``process`` / ``compute_metrics`` on fake data samples with a
small random feature network."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.structures import BaseDataElement
from mmseg.registry import METRICS

from projects.multimodal_translation.evaluation import (
    FIDFeatureExtractor, FIDInceptionV3, frechet_distance, functional,
    kernel_inception_distance, matplotlib_render, mean_absolute_error,
    mean_squared_error, peak_signal_noise_ratio, ssim)

OUTPUTS = ('branch0', 'branch1', 'ens')


# ----------------------------------------------------------------- helpers
def direct_fid(a, b, eps=0.):
    """FID through the symmetric form tr sqrt(S_a^1/2 S_b S_a^1/2), with
    covariances summed by hand (no np.cov, no sqrtm)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a = (a - mu_a).T @ (a - mu_a) / (len(a) - 1) + eps * np.eye(a.shape[1])
    s_b = (b - mu_b).T @ (b - mu_b) / (len(b) - 1) + eps * np.eye(a.shape[1])
    w, v = np.linalg.eigh(s_a)
    root_a = v @ np.diag(np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root_a @ s_b @ root_a)
    tr_covmean = np.sqrt(np.clip(inner, 0, None)).sum()
    # the offset enters only through the product, not the traces
    traces = np.trace(s_a) + np.trace(s_b) - 2 * eps * a.shape[1]
    return np.sum((mu_a - mu_b)**2) + traces - 2 * tr_covmean


def direct_mmd2(x, y):
    """Unbiased MMD^2 with k(u, v) = (u.v / d + 1)^3, pair by pair."""
    m, d = len(x), x.shape[1]

    def k(u, v):
        return (float(np.dot(u, v)) / d + 1)**3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return (xx + yy) / (m * (m - 1)) - 2 * xy / (m * m)


def direct_ssim(p, t):
    """SSIM of one-channel [-1, 1] images, window by window, with the
    11x11 Gaussian (sigma 1.5) built as a 2-D array."""
    p, t = (p + 1) / 2, (t + 1) / 2
    r = np.arange(11) - 5
    w = np.exp(-(r[:, None]**2 + r[None, :]**2) / (2 * 1.5**2))
    w /= w.sum()
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for i in range(p.shape[0] - 10):
        for j in range(p.shape[1] - 10):
            x, y = p[i:i + 11, j:j + 11], t[i:i + 11, j:j + 11]
            mx, my = (w * x).sum(), (w * y).sum()
            vx = (w * (x - mx)**2).sum()
            vy = (w * (y - my)**2).sum()
            cxy = (w * (x - mx) * (y - my)).sum()
            values.append((2 * mx * my + c1) * (2 * cxy + c2) /
                          ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return np.mean(values)


def tiny_network(dim=6):
    """A small random network with the extractor's interface:
    (N, 3, H, W) -> (N, dim)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, dim, 3, stride=2), nn.Tanh(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten())


def fake_samples(num, size=16, channels=3, seed=0, outputs=OUTPUTS):
    """Data samples as the evaluators expect them: ``pred_images`` (one
    image per output) and ``gt_image``, in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(num):
        gt = torch.rand(channels, size, size, generator=g) * 2 - 1
        preds = {}
        for k, name in enumerate(outputs):
            noise = 0.3 * (k + 1) * torch.randn(gt.shape, generator=g)
            preds[name] = (gt + noise).clamp(-1, 1)
        samples.append(
            dict(pred_images=preds, gt_image=gt, img_path=f'{i:03d}.png'))
    return samples


# --------------------------------------------------------------------- FID
def test_frechet_distance_matches_direct_computation():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(size=(200, 6)) * 2 + 0.5
    assert frechet_distance(a, b) == pytest.approx(direct_fid(a, b), 1e-8)
    # symmetric
    assert frechet_distance(b,
                            a) == pytest.approx(frechet_distance(a, b), 1e-8)


def test_frechet_distance_identity_and_mean_shift():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 5))
    delta = np.array([1., -2., 0.5, 0., 3.])
    assert abs(frechet_distance(a, a)) < 1e-8
    # same samples shifted: equal covariances, FID = |delta|^2
    assert frechet_distance(a, a + delta) == pytest.approx(delta @ delta, 1e-8)
    # independent Gaussian samples with the same shift: close to |delta|^2
    # (the sampling error of the means dominates: std ~ 2 |delta| (2/n)^.5)
    b = rng.normal(size=(20000, 5)) + delta
    c = rng.normal(size=(20000, 5))
    assert frechet_distance(b, c) == pytest.approx(delta @ delta, abs=0.3)


def test_frechet_distance_singular_covariance():
    """Fewer samples than dimensions (as 500 images for 2048 features):
    singular covariances, still the direct value."""
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(4, 10)), rng.normal(size=(5, 10)) + 1
    assert frechet_distance(a, b) == pytest.approx(direct_fid(a, b), 1e-6)


def test_frechet_distance_retries_with_offset(monkeypatch):
    """A non-finite sqrtm (older SciPy on singular products) is retried
    with 1e-6 on both covariance diagonals."""
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(3, 6)), rng.normal(size=(4, 6))
    sqrtm = functional.linalg.sqrtm
    calls = []

    def first_fails(matrix):
        calls.append(matrix)
        if len(calls) == 1:
            return np.full_like(matrix, np.nan)
        return sqrtm(matrix)

    monkeypatch.setattr(functional.linalg, 'sqrtm', first_fails)
    value = frechet_distance(a, b)
    assert len(calls) == 2
    offset = 1e-6 * np.eye(6)
    expected = (np.cov(a, rowvar=False) + offset) @ (
        np.cov(b, rowvar=False) + offset)
    np.testing.assert_allclose(calls[1], expected, rtol=1e-12)
    assert value == pytest.approx(direct_fid(a, b, eps=1e-6), 1e-6)

    monkeypatch.setattr(functional.linalg, 'sqrtm',
                        lambda m: np.full_like(m, np.inf))
    with pytest.raises(ValueError, match='not finite'):
        frechet_distance(a, b)


def test_frechet_distance_imaginary_part(monkeypatch):
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    sqrtm = functional.linalg.sqrtm
    # a small imaginary part is dropped
    monkeypatch.setattr(functional.linalg, 'sqrtm',
                        lambda m: sqrtm(m) + 1e-5j * np.eye(3))
    assert frechet_distance(a, b) == pytest.approx(direct_fid(a, b), 1e-6)
    # a large one is an error
    monkeypatch.setattr(functional.linalg, 'sqrtm',
                        lambda m: sqrtm(m) + 0.1j * np.eye(3))
    with pytest.raises(ValueError, match='imaginary'):
        frechet_distance(a, b)


def test_feature_set_errors():
    a = np.zeros((5, 4))
    with pytest.raises(ValueError, match=r'feats_a must be an \(N, D\)'):
        frechet_distance(np.zeros(5), a)
    with pytest.raises(ValueError, match='Feature sizes differ'):
        frechet_distance(a, np.zeros((5, 3)))
    with pytest.raises(ValueError, match='feats_b has 1 feature rows'):
        kernel_inception_distance(a, np.zeros((1, 4)))
    with pytest.raises(ValueError, match='non-finite'):
        frechet_distance(a, np.full((5, 4), np.nan))


# --------------------------------------------------------------------- KID
def test_kid_equal_sizes_is_the_full_mmd():
    """With equal set sizes <= subset_size each subset is a permutation of
    the sets: the draws do not matter."""
    rng = np.random.default_rng(5)
    a = rng.normal(size=(12, 5))
    b = rng.normal(size=(12, 5)) * 1.5 + 0.3
    expected = direct_mmd2(a, b)
    for source in (None, np.random.default_rng(7), np.random.RandomState(7)):
        value = kernel_inception_distance(a, b, num_subsets=3, rng=source)
        assert value == pytest.approx(expected, rel=1e-10)


def test_kid_subsets_follow_the_draw_order():
    """Subsets of min(subset_size, N_a, N_b) rows drawn without
    replacement, first set then second, subset after subset."""
    data = np.random.default_rng(6)
    a, b = data.normal(size=(15, 4)), data.normal(size=(11, 4)) + 0.5
    for make in (np.random.default_rng, np.random.RandomState):
        draws = make(3)
        expected = []
        for _ in range(4):
            rows_a = draws.choice(15, 6, replace=False)
            rows_b = draws.choice(11, 6, replace=False)
            expected.append(direct_mmd2(a[rows_a], b[rows_b]))
        value = kernel_inception_distance(
            a, b, num_subsets=4, subset_size=6, rng=make(3))
        assert value == pytest.approx(np.mean(expected), rel=1e-10)
    # rng=None is np.random.default_rng(0)
    assert kernel_inception_distance(
        a, b, num_subsets=4, subset_size=6) == kernel_inception_distance(
            a, b, num_subsets=4, subset_size=6, rng=np.random.default_rng(0))


def test_kid_same_distribution_near_zero_and_errors():
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    assert abs(kernel_inception_distance(a, b, num_subsets=2)) < 0.02
    assert kernel_inception_distance(a, b + 1, num_subsets=2) > 0.5
    with pytest.raises(ValueError, match='at least 2 rows'):
        kernel_inception_distance(a, b, subset_size=1)
    with pytest.raises(ValueError, match='num_subsets'):
        kernel_inception_distance(a, b, num_subsets=0)


# ----------------------------------------------------- per-image measures
def test_mae_mse_psnr_hand_made():
    pred, target = np.zeros((3, 4, 4)), np.full((3, 4, 4), 0.5)
    assert mean_absolute_error(pred, target) == pytest.approx(0.5)
    assert mean_squared_error(pred, target) == pytest.approx(0.25)
    # 10 log10(2^2 / 0.25) = 10 log10(16)
    assert peak_signal_noise_ratio(pred,
                                   target) == pytest.approx(12.041199826559248)
    pred = np.array([[1., -1.], [0.5, 0.]])
    target = np.array([[0., 0.], [0., 0.]])
    assert mean_absolute_error(pred, target) == pytest.approx(2.5 / 4)
    assert mean_squared_error(pred, target) == pytest.approx(2.25 / 4)
    assert peak_signal_noise_ratio(pred, pred) == math.inf
    # PSNR on [-1, 1] equals PSNR of the [0, 255] images with peak 255
    rng = np.random.default_rng(9)
    p, t = rng.uniform(-1, 1, (3, 8, 8)), rng.uniform(-1, 1, (3, 8, 8))
    mse_255 = np.mean(((p - t) * 127.5)**2)
    assert peak_signal_noise_ratio(p, t) == pytest.approx(
        10 * np.log10(255**2 / mse_255))
    with pytest.raises(ValueError, match='shapes differ'):
        mean_absolute_error(np.zeros((3, 4, 4)), np.zeros((3, 4, 5)))


def test_ssim_against_window_by_window_computation():
    rng = np.random.default_rng(10)
    p = rng.uniform(-1, 1, (13, 12))
    t = np.clip(p + rng.normal(scale=0.3, size=p.shape), -1, 1)
    assert ssim(p, t) == pytest.approx(direct_ssim(p, t), rel=1e-10)
    # channels are averaged
    pc, tc = np.stack([p, t, -p]), np.stack([t, t, p])
    expected = np.mean([direct_ssim(x, y) for x, y in zip(pc, tc)])
    assert ssim(pc, tc) == pytest.approx(expected, rel=1e-10)


def test_ssim_known_values():
    rng = np.random.default_rng(11)
    x = rng.uniform(-1, 1, (3, 16, 16))
    y = rng.uniform(-1, 1, (3, 16, 16))
    assert ssim(x, x) == pytest.approx(1.0)
    assert ssim(x, y) == pytest.approx(ssim(y, x))
    assert ssim(x, y) < 0.2
    # constant black (0) vs white (1) on [0, 1]: no variance, so
    # SSIM = C1 / (1 + C1) everywhere
    black, white = -np.ones((11, 11)), np.ones((11, 11))
    assert ssim(black, white) == pytest.approx(1e-4 / (1 + 1e-4))
    with pytest.raises(ValueError, match='at least 11x11'):
        ssim(np.zeros((3, 10, 16)), np.zeros((3, 10, 16)))


# ------------------------------------------------------- matplotlib render
def test_matplotlib_render_stretches_and_resizes():
    image = np.full((3, 64, 64), -0.5, np.float32)
    image[:, :, 32:] = 0.2  # left: the minimum, right: the maximum
    rendered = matplotlib_render(image)
    assert rendered.shape == (3, 500, 500) and rendered.dtype == np.float32
    # min-max stretched to 0 / 255, i.e. -1 / 1 after the mapping
    assert np.all(rendered[:, :, :200] == -1)
    assert np.all(rendered[:, :, 300:] == 1)
    # constant images render black
    assert np.all(matplotlib_render(np.zeros((3, 20, 20))) == -1)
    with pytest.raises(ValueError, match=r'\(3, H, W\)'):
        matplotlib_render(np.zeros((1, 20, 20)))


# ----------------------------------------------- network and extraction
def test_fid_inception_structure_and_weights(tmp_path):
    net = FIDInceptionV3(weights=None)
    # torchvision's Inception3 without the aux head and fc: 564 tensors
    state = net.state_dict()
    assert len(state) == 564
    assert sum(p.numel() for p in net.parameters()) == 21785568
    assert state['Conv2d_1a_3x3.conv.weight'].shape == (32, 3, 3, 3)
    assert state['Mixed_7c.branch3x3dbl_3b.conv.weight'].shape == (384, 384, 3,
                                                                   1)
    with torch.no_grad():
        features = net(torch.rand(2, 3, 40, 40) * 2 - 1)
    assert features.shape == (2, 2048)

    # the weights file: the state dict plus the unused 1008-class fc
    torch.manual_seed(1)
    other = FIDInceptionV3(weights=None)
    saved = dict(other.state_dict())
    saved['fc.weight'] = torch.zeros(1008, 2048)
    saved['fc.bias'] = torch.zeros(1008)
    path = tmp_path / 'pt_inception-2015-12-05-6726825d.pth'
    torch.save(saved, path)
    loaded = FIDInceptionV3(weights=str(path))
    for key, value in other.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key

    del saved['Mixed_5b.branch1x1.conv.weight']
    saved['extra.weight'] = torch.zeros(1)
    torch.save(saved, path)
    with pytest.raises(KeyError, match='Mixed_5b.branch1x1.conv.weight'):
        FIDInceptionV3(weights=str(path))


def test_fid_inception_missing_weights_file(tmp_path):
    missing = str(tmp_path / 'nowhere.pth')
    with pytest.raises(FileNotFoundError, match='nowhere.pth'):
        FIDFeatureExtractor(dict(type='FIDInceptionV3', weights=missing))


def test_feature_extractor_wiring():
    net = tiny_network(dim=6)
    extractor = FIDFeatureExtractor(net, batch_size=2)
    images = torch.rand(5, 3, 12, 12) * 2 - 1
    features = extractor(images)
    assert features.shape == (5, 6) and features.dtype == np.float64
    with torch.no_grad():
        np.testing.assert_allclose(
            features, net(images).double().numpy(), rtol=1e-6)
    # images of different sizes, in order
    mixed = [images[0], torch.zeros(3, 20, 20), images[1]]
    np.testing.assert_allclose(
        extractor(mixed)[[0, 2]], features[:2], rtol=1e-6)
    with pytest.raises(ValueError, match=r'expected images in \[-1, 1\]'):
        extractor(images * 255)
    with pytest.raises(ValueError, match=r'\(N, 3, H, W\)'):
        extractor(torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match='expected 2048'):
        FIDFeatureExtractor(net, feature_dim=2048)(images)
    bad = FIDFeatureExtractor(nn.Conv2d(3, 4, 3))
    with pytest.raises(ValueError, match=r'expected \(N, D\)'):
        bad(images)
    with pytest.raises(TypeError, match='nn.Module'):
        FIDFeatureExtractor('inception')


# -------------------------------------------------------------- evaluators
def test_translation_metric():
    metric = METRICS.build(dict(type='TranslationMetric'))
    samples = fake_samples(5, size=16)
    metric.process({}, samples[:3])
    # data elements are read too
    metric.process({}, [BaseDataElement(**s) for s in samples[3:]])
    results = metric.evaluate(5)
    assert len(results) == 5 * len(OUTPUTS)
    for name in OUTPUTS:
        pairs = [(s['pred_images'][name].numpy(), s['gt_image'].numpy())
                 for s in samples]
        mses = [np.mean((p - t)**2) for p, t in pairs]
        assert results[f'translation/{name}_mae'] == pytest.approx(
            np.mean([np.mean(np.abs(p - t)) for p, t in pairs]), rel=1e-6)
        assert results[f'translation/{name}_mse'] == pytest.approx(
            np.mean(mses), rel=1e-6)
        assert results[f'translation/{name}_rmse'] == pytest.approx(
            np.sqrt(np.mean(mses)), rel=1e-6)
        assert results[f'translation/{name}_psnr'] == pytest.approx(
            np.mean([10 * np.log10(4 / m) for m in mses]), rel=1e-6)
        assert results[f'translation/{name}_ssim'] == pytest.approx(
            np.mean([ssim(p, t) for p, t in pairs]), rel=1e-6)
    # larger noise on later outputs
    assert results['translation/branch0_mae'] < results['translation/ens_mae']


def test_translation_metric_subsets():
    metric = METRICS.build(
        dict(type='TranslationMetric', metrics=['rmse'], outputs=['ens']))
    metric.process({}, fake_samples(2))
    assert list(metric.evaluate(2)) == ['translation/ens_rmse']
    with pytest.raises(ValueError, match='must be among'):
        METRICS.build(dict(type='TranslationMetric', metrics=['fid']))


def test_fid_kid_metric():
    net = tiny_network(dim=4)
    metric = METRICS.build(
        dict(type='FIDKIDMetric', network=net, kid_subset_size=5))
    samples = fake_samples(8, size=16, seed=1)
    metric.process({}, samples[:5])
    metric.process({}, samples[5:])
    results = metric.evaluate(8)
    extractor = FIDFeatureExtractor(net)
    real = extractor([s['gt_image'] for s in samples])
    for name in OUTPUTS:
        fake = extractor([s['pred_images'][name] for s in samples])
        assert results[f'translation/{name}_fid'] == pytest.approx(
            frechet_distance(fake, real), rel=1e-6)
        kid = kernel_inception_distance(fake, real, subset_size=5)
        assert results[f'translation/{name}_kid'] == pytest.approx(
            100 * kid, rel=1e-6, abs=1e-9)


def test_fid_kid_metric_matplotlib_render():
    net = tiny_network(dim=3)
    metric = METRICS.build(
        dict(type='FIDKIDMetric', network=net, render='matplotlib'))
    samples = fake_samples(3, size=12, seed=2, outputs=('ens', ))
    metric.process({}, samples)
    results = metric.evaluate(3)
    extractor = FIDFeatureExtractor(net)
    real = extractor(
        [torch.from_numpy(matplotlib_render(s['gt_image'])) for s in samples])
    fake = extractor([
        torch.from_numpy(matplotlib_render(s['pred_images']['ens']))
        for s in samples
    ])
    assert results['translation/ens_fid'] == pytest.approx(
        frechet_distance(fake, real), rel=1e-6)
    with pytest.raises(ValueError, match='render must be one of'):
        METRICS.build(dict(type='FIDKIDMetric', network=net, render='png'))


@pytest.mark.parametrize('metric_type', ['TranslationMetric', 'FIDKIDMetric'])
def test_metric_input_errors(metric_type):
    cfg = dict(type=metric_type)
    if metric_type == 'FIDKIDMetric':
        cfg['network'] = tiny_network()
    metric = METRICS.build(cfg)
    sample = fake_samples(1)[0]

    def check(bad, error, match):
        with pytest.raises(error, match=match):
            metric.process({}, [bad])

    def without(key):
        return {k: v for k, v in sample.items() if k != key}

    check(without('gt_image'), KeyError, "000.png has no 'gt_image'")
    check(without('pred_images'), KeyError, "no 'pred_images'")
    check(
        dict(sample, pred_images=sample['gt_image']), TypeError,
        'must be a non-empty dict')
    check(
        dict(sample, gt_image=sample['gt_image'] * 127.5 + 127.5), ValueError,
        r"'gt_image' has values in .*expected an image in \[-1, 1\]")
    check(
        dict(sample, pred_images=dict(ens=torch.zeros(3, 8, 8))), ValueError,
        r"pred_images\['ens'\] has shape \(3, 8, 8\), the target")
    check(
        dict(sample, gt_image=torch.zeros(16, 16)), ValueError,
        r'must be a \(C, H, W\) image')
    if metric_type == 'FIDKIDMetric':
        gray = fake_samples(1, channels=1)[0]
        check(gray, ValueError, 'has 1 channels, expected 3')
    # every sample must have the same outputs
    metric.process({}, fake_samples(1))
    metric.process({}, fake_samples(1, outputs=('ens', )))
    with pytest.raises(ValueError, match='different outputs'):
        metric.compute_metrics(metric.results)


def test_fid_kid_metric_needs_two_images():
    metric = METRICS.build(dict(type='FIDKIDMetric', network=tiny_network()))
    metric.process({}, fake_samples(1))
    with pytest.raises(ValueError, match='at least 2 evaluated images'):
        metric.compute_metrics(metric.results)
