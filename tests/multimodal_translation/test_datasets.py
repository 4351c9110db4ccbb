"""Taskonomy translation data: layouts and split lists, per-domain loading
and scaling, shared augmentation, packing, and the synthetic set."""
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.dataset import Compose
from mmseg.registry import DATASETS

from projects.multimodal_translation.datasets import (
    DOMAIN_FORMATS, LAYOUTS, SYNTHETIC_DOMAINS, TranslationDataSample,
    frame_template, generate_synthetic_translation, list_taskonomy_frames,
    read_domain, resize_chw, scale_domain)
from tests.utils import taskonomy_domain_arrays, write_taskonomy_png

SIZE = (64, 64)
BUILDINGS = ('bldga', 'bldgb')
FRAMES = [(b, p, v) for b in BUILDINGS for p in (0, 3) for v in (0, 1)]
TRAIN_PIPELINE = [
    dict(type='LoadTranslationDomains'),
    dict(type='TranslationResize', scale=286),
    dict(type='TranslationRandomCrop', crop_size=256),
    dict(type='TranslationRandomFlip', prob=0.5),
    dict(type='PackTranslationInputs')
]
TEST_PIPELINE = [
    dict(type='LoadTranslationDomains'),
    dict(type='TranslationResize', scale=256),
    dict(type='PackTranslationInputs')
]


def make_tree(root, layout='building', domains=tuple(DOMAIN_FORMATS)):
    """A miniature Taskonomy tree: 2 buildings x 2 points x 2 views, every
    domain in its real format. Returns the split-list lines."""
    lines = []
    for index, (building, point, view) in enumerate(FRAMES):
        template = frame_template(layout, building, point, view)
        for domain, array in taskonomy_domain_arrays(SIZE, index).items():
            if domain in domains:
                write_taskonomy_png(
                    osp.join(root, template.replace('{domain}', domain)),
                    array)
        lines.append(template)
    return lines


def write_list(path, lines):
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def build(root, sources=('reshading', 'edge_texture'), target='rgb', **kwargs):
    kwargs.setdefault('ann_file', 'train.txt')
    kwargs.setdefault('image_size', SIZE)
    return DATASETS.build(
        dict(
            type='TaskonomyDataset',
            sources=sources,
            target=target,
            data_root=str(root),
            **kwargs))


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('taskonomy'))
    write_list(osp.join(root, 'train.txt'), make_tree(root))
    return root


# ----------------------------------------------------------------- layouts
@pytest.mark.parametrize('layout', sorted(LAYOUTS))
def test_layouts_list_and_load(tmp_path, layout):
    root = str(tmp_path)
    domains = ('rgb', 'reshading', 'edge_texture')
    written = make_tree(root, layout, domains)
    frames = list_taskonomy_frames(root, domains, layout)
    if layout == 'single_building':  # one building: the frames coincide
        assert len(frames) == len(set(written)) == 4
    else:
        assert frames == sorted(set(written)) and len(frames) == 8
    for line in frames:
        assert line.count('{domain}') == 2
    write_list(osp.join(root, 'train.txt'), frames)
    dataset = build(root)
    assert len(dataset) == len(frames)
    info = dataset.get_data_info(0)
    assert info['sources'] == ('reshading', 'edge_texture')
    assert info['target'] == 'rgb'
    assert (info['point'], info['view']) == (0, 0)
    for domain, path in (('edge_texture', info['source_paths'][1]),
                         ('rgb', info['target_path'])):
        assert path == osp.join(
            root, LAYOUTS[layout].format(
                building='bldga', point=0, view=0, domain=domain))
    assert dataset.metainfo['sources'] == ('reshading', 'edge_texture')
    assert dataset.metainfo['target'] == 'rgb'


def test_split_list_lines_are_relative_templates(tree):
    lines = open(osp.join(tree, 'train.txt')).read().split()
    assert lines[0] == 'bldga/{domain}/point_0_view_0_domain_{domain}.png'
    dataset = build(tree, ('normal', 'depth_euclidean'), 'rgb')
    assert len(dataset) == len(FRAMES)
    info = dataset.get_data_info(len(FRAMES) - 1)
    assert info['frame'] == lines[-1]
    assert info['source_paths'] == [
        osp.join(tree, 'bldgb', d, f'point_3_view_1_domain_{d}.png')
        for d in ('normal', 'depth_euclidean')
    ]


@pytest.mark.parametrize(
    'sources, target, message',
    [((), 'rgb', '1 to 4'), ('rgb', 'normal', '1 to 4'),
     (('normal', 'reshading', 'edge_texture', 'edge_occlusion',
       'depth_euclidean'), 'rgb', 'At most 4'),
     (('normal', 'normal'), 'rgb', 'Duplicate'),
     (('normal', 'rgb'), 'rgb', 'also a source'),
     (('normal', 'mist'), 'rgb', "domain 'mist'"),
     (('normal', ), 'segment_semantic', "domain 'segment_semantic'")])
def test_bad_domain_arguments(tree, sources, target, message):
    with pytest.raises(ValueError, match=message):
        build(tree, sources, target)


@pytest.mark.parametrize('line, message', [
    ('bldga/rgb/point_0_view_0_domain_rgb.png', 'no {domain} placeholder'),
    ('bldga/{domain}/frame_0_{domain}.png', 'not a Taskonomy frame name'),
    ('{building}/{domain}/point_0_view_0_domain_{domain}.png', 'braces'),
    ('a b', 'one frame path per line'),
])
def test_bad_split_lines(tree, tmp_path, line, message):
    ann = write_list(str(tmp_path / 'bad.txt'), [line])
    with pytest.raises(ValueError, match=message) as info:
        build(tree, ann_file=ann)
    assert 'bad.txt:1' in str(info.value)


def test_bad_split_files(tree, tmp_path):
    line = 'bldga/{domain}/point_0_view_0_domain_{domain}.png'
    with pytest.raises(ValueError, match='already listed on line 1'):
        build(tree, ann_file=write_list(str(tmp_path / 'd.txt'), [line] * 2))
    with pytest.raises(ValueError, match='lists no frames'):
        build(tree, ann_file=write_list(str(tmp_path / 'e.txt'), ['']))
    with pytest.raises(FileNotFoundError, match='nope.txt'):
        build(tree, ann_file=str(tmp_path / 'nope.txt'))


def test_missing_partner_domain(tmp_path):
    root = str(tmp_path)
    write_list(osp.join(root, 'train.txt'), make_tree(root))
    missing = osp.join(root, 'bldgb', 'edge_texture',
                       'point_3_view_0_domain_edge_texture.png')
    os.remove(missing)
    with pytest.raises(FileNotFoundError) as info:
        build(root)
    assert 'missing edge_texture file' in str(info.value)
    assert missing in str(info.value)
    # listing skips the incomplete frame
    frames = list_taskonomy_frames(root, ('rgb', 'edge_texture'))
    assert len(frames) == len(FRAMES) - 1
    # without the start-up check, loading the frame names the file
    dataset = build(
        root,
        check_files=False,
        pipeline=[dict(type='LoadTranslationDomains')])
    with pytest.raises(
            FileNotFoundError,
            match='edge_texture file .*'
            'point_3_view_0_domain_edge_texture.png'):
        dataset[6]


# ---------------------------------------------------------------- scaling
def read_pixels(tmp_path, domain, array, **kwargs):
    path = str(tmp_path / f'{domain}.png')
    write_taskonomy_png(path, array)
    out = read_domain(path, domain, **kwargs)
    assert out.dtype == np.float32 and out.shape == (3, ) + array.shape[:2]
    assert out.min() >= -1 and out.max() <= 1
    return out


@pytest.mark.parametrize('domain', ['rgb', 'normal', 'principal_curvature'])
def test_8bit_colour_domains(tmp_path, domain):
    pixels = np.array([[[0, 255, 128], [51, 0, 255]]], np.uint8)  # RGB
    out = read_pixels(tmp_path, domain, pixels)
    expected = pixels.transpose(2, 0, 1) / 127.5 - 1
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert out[0, 0, 0] == -1 and out[1, 0, 0] == 1  # channel order kept


@pytest.mark.parametrize('channels', [1, 3])
def test_reshading_grey_or_three_channels(tmp_path, channels):
    grey = np.array([[0, 255, 64]], np.uint8)
    pixels = grey if channels == 1 else np.repeat(grey[..., None], 3, 2)
    out = read_pixels(tmp_path, 'reshading', pixels)
    for channel in out:  # a grey map is tiled to 3 equal channels
        np.testing.assert_allclose(channel, grey / 127.5 - 1, atol=1e-6)


@pytest.mark.parametrize('domain, maximum', [('edge_texture', 11355),
                                             ('edge_occlusion', 11584)])
def test_edges_fixed_maximum(tmp_path, domain, maximum):
    pixels = np.array([[0, maximum, 65535, 5000, maximum // 2]], np.uint16)
    out = read_pixels(tmp_path, domain, pixels)
    assert (out[0] == out[1]).all() and (out[0] == out[2]).all()
    np.testing.assert_allclose(
        out[0, 0],
        [-1, 1, 1, 2 * 5000 / maximum - 1, 2 * (maximum // 2) / maximum - 1],
        atol=1e-6)
    # the reference's 8-bit intermediate truncates to 256 levels
    quantized = read_pixels(
        tmp_path, domain, pixels, quantize_like_reference=True)
    assert quantized[0, 0, 3] == pytest.approx(
        2 * np.floor(5000 * 255 / maximum) / 255 - 1, abs=1e-6)


@pytest.mark.parametrize('domain', ['depth_euclidean', 'depth_zbuffer'])
def test_depth_log_scaling(tmp_path, domain):
    pixels = np.array([[0, 65535, 1000, 256, 20]], np.uint16)
    out = read_pixels(tmp_path, domain, pixels)[0, 0]
    expected = 2 * np.log1p(pixels[0].astype(np.float64)) / 11.1 - 1
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert out[0] == -1
    assert out[1] == pytest.approx(0.99827, abs=1e-5)  # log(65536) < 11.1
    assert abs(out[3]) < 0.001  # log(257) ~ 11.1 / 2: the middle
    assert out[2] > 2 * 1000 / 65535 - 1 + 0.8  # log, not linear
    # the fixed maximum (in log units) maps to exactly 1
    assert scale_domain(np.array([np.expm1(11.1)]), domain)[0] == \
        pytest.approx(1, abs=1e-6)


def write_bytes(path, data):
    with open(path, 'wb') as f:
        f.write(data)
    return path


@pytest.mark.parametrize(
    'domain, array, message',
    [('edge_texture', np.zeros(
        (4, 4), np.uint8), 'is 8-bit, expected a 16-bit single-channel PNG'),
     ('depth_euclidean', np.zeros((4, 4), np.uint8), 'is 8-bit'),
     ('rgb', np.zeros(
         (4, 4, 3), np.uint16), 'is 16-bit, expected a 8-bit 3-channel PNG'),
     ('rgb', np.zeros((4, 4), np.uint8), 'has 1 channels, expected a 8-bit'),
     ('rgb', np.zeros((4, 4, 4), np.uint8), 'has 4 channels'),
     ('normal', np.zeros((4, 4), np.uint8), 'has 1 channels'),
     ('depth_euclidean', np.zeros((4, 4, 3), np.uint16), 'has 3 channels'),
     ('reshading', np.zeros(
         (4, 4, 4), np.uint8), 'single-channel or 3-channel')])
def test_wrong_format_is_an_error(tmp_path, domain, array, message):
    path = str(tmp_path / 'bad.png')
    write_taskonomy_png(path, array)
    with pytest.raises(ValueError, match=message) as info:
        read_domain(path, domain)
    assert path in str(info.value) and domain in str(info.value)


def test_wrong_size_unreadable_and_missing_files(tmp_path):
    path = str(tmp_path / 'rgb.png')
    write_taskonomy_png(path, np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(ValueError, match=r'is 64x48 \(WxH\), expected 64x64'):
        read_domain(path, 'rgb', image_size=(64, 64))
    png = open(path, 'rb').read()
    for name, data in [('garbage', b'not a png'), ('empty', b''),
                       ('truncated', png[:len(png) // 2])]:
        bad = write_bytes(str(tmp_path / f'{name}.png'), data)
        with pytest.raises(OSError, match='Cannot decode rgb file') as info:
            read_domain(bad, 'rgb')
        assert bad in str(info.value)
    with pytest.raises(FileNotFoundError, match='normal file .* not exist'):
        read_domain(str(tmp_path / 'none.png'), 'normal')
    with pytest.raises(ValueError, match="Unknown Taskonomy domain 'mist'"):
        read_domain(path, 'mist')


def test_dataset_checks_frame_size(tmp_path):
    root = str(tmp_path)
    write_list(osp.join(root, 'train.txt'), make_tree(root))
    dataset = build(
        root,
        image_size=(512, 512),
        pipeline=[dict(type='LoadTranslationDomains')])
    with pytest.raises(ValueError, match='is 64x64 .*expected 512x512'):
        dataset[0]
    # without a fixed size, the domains of a frame must still agree
    write_taskonomy_png(
        osp.join(root, 'bldga', 'rgb', 'point_0_view_0_domain_rgb.png'),
        np.zeros((32, 64, 3), np.uint8))
    dataset = build(
        root, image_size=None, pipeline=[dict(type='LoadTranslationDomains')])
    assert dataset[1]['target_img'].shape == (3, ) + SIZE
    with pytest.raises(ValueError, match='differ in size'):
        dataset[0]


# ----------------------------------------------------------- augmentation
def coordinate_frame(root):
    """One frame whose domains encode the pixel coordinates, each in its
    own format: 8-bit ramps of 4 levels per pixel, 16-bit edge ramps of 150
    per pixel, depths whose log grows by 0.09 per pixel."""
    h, w = SIZE
    yy, xx = np.mgrid[0:h, 0:w]
    x8, y8 = (4 * xx).astype(np.uint8), (4 * yy).astype(np.uint8)
    zero = np.zeros_like(x8)
    arrays = dict(
        rgb=np.stack([x8, y8, zero], -1),
        normal=np.stack([y8, x8, zero + 128], -1),
        principal_curvature=np.stack([x8, y8, zero], -1),
        reshading=x8,
        edge_texture=(150 * xx).astype(np.uint16),
        edge_occlusion=(150 * yy).astype(np.uint16),
        depth_euclidean=np.round(np.expm1(4 + 0.09 * yy)).astype(np.uint16),
        depth_zbuffer=np.round(np.expm1(4 + 0.09 * xx)).astype(np.uint16))
    template = frame_template('building', 'coords', 0, 0)
    for domain, array in arrays.items():
        write_taskonomy_png(
            osp.join(root, template.replace('{domain}', domain)), array)
    return write_list(osp.join(root, 'coords.txt'), [template])


def decode_coordinates(domain, image):
    """(x, y) maps (None where the domain does not encode one) from a
    (3, H, W) [-1, 1] array of :func:`coordinate_frame`."""
    unit = (image.astype(np.float64) + 1) / 2
    if domain in ('rgb', 'principal_curvature'):
        return unit[0] * 255 / 4, unit[1] * 255 / 4
    if domain == 'normal':
        return unit[1] * 255 / 4, unit[0] * 255 / 4
    if domain == 'reshading':
        return unit[0] * 255 / 4, None
    if domain == 'edge_texture':
        return unit[0] * 11355 / 150, None
    if domain == 'edge_occlusion':
        return None, unit[0] * 11584 / 150
    log = (unit[0] * 11.1 - 4) / 0.09
    return (None, log) if domain == 'depth_euclidean' else (log, None)


@pytest.mark.parametrize('sources, target', [
    (('normal', 'reshading', 'edge_texture', 'depth_euclidean'), 'rgb'),
    (('rgb', 'edge_occlusion', 'depth_zbuffer'), 'principal_curvature'),
])
def test_same_crop_and_flip_for_every_domain(tmp_path, sources, target):
    """Resize 64 -> 40, crop 32, flip: every domain must show the same
    source coordinates at every output pixel."""
    ann = coordinate_frame(str(tmp_path))
    pipeline = Compose([
        dict(type='LoadTranslationDomains'),
        dict(type='TranslationResize', scale=40),
        dict(type='TranslationRandomCrop', crop_size=32),
        dict(type='TranslationRandomFlip', prob=0.5)
    ])
    dataset = build(str(tmp_path), sources, target, ann_file=ann)
    seen = set()
    for seed in range(8):
        np.random.seed(seed)
        results = pipeline(dataset.get_data_info(0))
        top, left = results['crop_offset']
        flip = results['flip']
        seen.add((top, left, flip))
        cols = left + np.arange(32)
        if flip:
            cols = cols[::-1]
        rows = top + np.arange(32)
        # resized pixel c shows source coordinate (c + 0.5) * 64 / 40 - 0.5;
        # the 2 border pixels of the resize see Pillow's edge clamping
        x_true = (cols + 0.5) * 1.6 - 0.5
        y_true = (rows + 0.5) * 1.6 - 0.5
        inner = ((rows[:, None] >= 2) & (rows[:, None] <= 37)
                 & (cols[None] >= 2) & (cols[None] <= 37))
        images = dict(zip(sources, results['source_imgs']))
        images[target] = results['target_img']
        for domain, image in images.items():
            assert image.shape == (3, 32, 32)
            x_map, y_map = decode_coordinates(domain, image)
            for decoded, truth in ((x_map, x_true[None]), (y_map,
                                                           y_true[:, None])):
                if decoded is not None:
                    error = np.abs(decoded - truth)[inner]
                    assert error.max() < 0.3, (seed, domain, error.max())
    assert {flip for _, _, flip in seen} == {False, True}
    assert len({(top, left) for top, left, _ in seen}) >= 4


def test_crop_needs_a_large_enough_image_and_loaded_domains(tree):
    pipeline = Compose([
        dict(type='LoadTranslationDomains'),
        dict(type='TranslationRandomCrop', crop_size=256)
    ])
    with pytest.raises(ValueError, match='smaller than the 256x256 crop'):
        pipeline(build(tree).get_data_info(0))
    flip = Compose([dict(type='TranslationRandomFlip')])
    with pytest.raises(KeyError, match='put LoadTranslationDomains before'):
        flip(build(tree).get_data_info(0))


# ---------------------------------------------------------------- packing
@pytest.mark.parametrize('sources', [
    ('reshading', ),
    ('reshading', 'edge_texture'),
    ('normal', 'depth_euclidean', 'edge_occlusion'),
    ('normal', 'reshading', 'depth_zbuffer', 'principal_curvature'),
])
def test_packed_shapes(tree, sources):
    num = len(sources)
    train = build(tree, sources, 'rgb', pipeline=TRAIN_PIPELINE)
    packed = train[0]
    assert set(packed) == {'inputs', 'data_samples'}
    inputs, sample = packed['inputs'], packed['data_samples']
    assert inputs.dtype == torch.float32
    assert inputs.shape == (3 * num, 256, 256)
    assert isinstance(sample, TranslationDataSample)
    assert sample.gt_image.shape == (3, 256, 256)
    assert inputs.abs().max() <= 1 and sample.gt_image.abs().max() <= 1
    assert sample.sources == sources and sample.target == 'rgb'
    assert len(sample.source_paths) == num
    assert sample.target_path.endswith('domain_rgb.png')
    assert sample.ori_shape == SIZE and sample.img_shape == (256, 256)
    assert 'crop_offset' in sample and 'flip' in sample

    test = build(tree, sources, 'rgb', pipeline=TEST_PIPELINE, test_mode=True)
    packed = test[2]
    sample = packed['data_samples']
    assert packed['inputs'].shape == (3 * num, 256, 256)
    assert 'crop_offset' not in sample and 'flip' not in sample
    # blocks of 3 channels are the sources in order, only resized
    for i, path in enumerate(sample.source_paths):
        expected = resize_chw(read_domain(path, sources[i]), (256, 256))
        np.testing.assert_array_equal(packed['inputs'][3 * i:3 * i + 3],
                                      expected)
    np.testing.assert_array_equal(
        sample.gt_image,
        resize_chw(read_domain(sample.target_path, 'rgb'), (256, 256)))
    torch.testing.assert_close(test[2]['inputs'], packed['inputs'])


def test_data_sample_convention():
    sample = TranslationDataSample(metainfo=dict(sources=('a', ), target='b'))
    sample.gt_image = torch.zeros(3, 8, 8)
    sample.pred_image = torch.zeros(3, 8, 8)
    assert sample.gt_image.shape == sample.pred_image.shape
    with pytest.raises(TypeError, match='gt_image must be a'):
        sample.gt_image = np.zeros((3, 8, 8))
    with pytest.raises(TypeError, match=r'\(C, H, W\) tensor, got \(8, 8\)'):
        sample.pred_image = torch.zeros(8, 8)


# -------------------------------------------------------------- synthetic
def test_synthetic_set_is_deterministic(tmp_path):
    kwargs = dict(num_train=6, num_test=2, image_size=(32, 32), seed=3)
    first = generate_synthetic_translation(str(tmp_path / 'a'), **kwargs)
    second = generate_synthetic_translation(str(tmp_path / 'b'), **kwargs)
    other = generate_synthetic_translation(
        str(tmp_path / 'c'), **dict(kwargs, seed=4))
    files = sorted(
        osp.relpath(osp.join(d, f), first) for d, _, fs in os.walk(first)
        for f in fs)
    assert len(files) == 8 * len(SYNTHETIC_DOMAINS) + 3  # + lists + marker
    for name in files:
        assert open(osp.join(first, name),
                    'rb').read() == open(osp.join(second, name),
                                         'rb').read(), name
    rgb = 'synthetic/rgb/point_0_view_0_domain_rgb.png'
    assert open(osp.join(first, rgb),
                'rb').read() != open(osp.join(other, rgb), 'rb').read()
    # a second call with the same parameters keeps the files
    stamp = os.stat(osp.join(first, rgb)).st_mtime_ns
    generate_synthetic_translation(first, **kwargs)
    assert os.stat(osp.join(first, rgb)).st_mtime_ns == stamp
    # the split lists are Taskonomy {domain} lines of the building layout
    train = open(osp.join(first, 'train.txt')).read().split()
    test = open(osp.join(first, 'test.txt')).read().split()
    assert len(train) == 6 and len(test) == 2
    assert list_taskonomy_frames(first, SYNTHETIC_DOMAINS) == sorted(
        train + test, key=lambda line: int(line.split('_')[1]))


@pytest.mark.parametrize(
    'sources', [('reshading', ), ('reshading', 'edge_texture'),
                ('reshading', 'edge_texture', 'normal'),
                ('normal', 'reshading', 'edge_texture', 'depth_euclidean')])
def test_synthetic_dataset(tmp_path_factory, sources):
    root = str(tmp_path_factory.getbasetemp() / 'synthetic_translation')
    common = dict(
        type='SyntheticTranslationDataset',
        data_root=root,
        sources=list(sources),
        num_train=6,
        num_test=2,
        image_size=(32, 32),
        pipeline=TRAIN_PIPELINE)
    train = DATASETS.build(common)
    test = DATASETS.build(dict(common, ann_file='test.txt'))
    assert (len(train), len(test)) == (6, 2)
    packed = train[0]
    assert packed['inputs'].shape == (3 * len(sources), 256, 256)
    assert packed['data_samples'].gt_image.shape == (3, 256, 256)
    with pytest.raises(ValueError, match="no domain \\['edge_occlusion'\\]"):
        DATASETS.build(dict(common, sources=['edge_occlusion']))


def test_synthetic_default_size(tmp_path):
    dataset = DATASETS.build(
        dict(
            type='SyntheticTranslationDataset',
            data_root=str(tmp_path / 'default'),
            ann_file='test.txt'))
    assert len(dataset) == 40
    assert dataset.get_data_info(0)['image_size'] == (64, 64)
    assert dataset.metainfo['sources'] == ('reshading', 'edge_texture')
    assert len(open(str(tmp_path / 'default' / 'train.txt')).readlines()) \
        == 200


def least_squares_rmse(features, target):
    design = np.stack(features + [np.ones_like(features[0])], axis=1)
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    return float(np.sqrt(np.mean((design @ coef - target)**2)))


def test_synthetic_target_needs_both_inputs(tmp_path):
    dataset = DATASETS.build(
        dict(
            type='SyntheticTranslationDataset',
            data_root=str(tmp_path / 'fit'),
            num_train=24,
            num_test=0,
            image_size=(32, 32),
            pipeline=[dict(type='LoadTranslationDomains')]))
    shade, texture, rgb = [], [], []
    for index in range(len(dataset)):
        results = dataset[index]
        shade.append(results['source_imgs'][0][0].ravel())
        texture.append(results['source_imgs'][1][0].ravel())
        rgb.append(results['target_img'].reshape(3, -1).T)
    s, t, rgb = np.concatenate(shade), np.concatenate(texture), np.concatenate(
        rgb)
    assert s.std() > 0.1 and t.std() > 0.3 and abs(np.corrcoef(s, t)[0,
                                                                     1]) < 0.2
    only_s = least_squares_rmse([s, s**2, s**3], rgb)
    only_t = least_squares_rmse([t, t**2, t**3], rgb)
    both = least_squares_rmse([s, t, s * t], rgb)
    assert both < 0.01  # bilinear in (s, t) up to 8-bit rounding
    assert both < 0.1 * min(only_s, only_t), (both, only_s, only_t)
