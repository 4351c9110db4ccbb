"""Tests of tools/dataset_converters/{nyu,sunrgbd}.py on miniature inputs
written in the real file formats (see ``converter_fixtures.py``)."""
import os
import os.path as osp
import subprocess
import sys

import cv2
import h5py
import numpy as np
import pytest
import scipy.io

from tools.dataset_converters import _common as common
from tools.dataset_converters import nyu, sunrgbd
from ..utils import REPO_ROOT
from . import converter_fixtures as fx


def read_png(path):
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


def read_list(path):
    with open(path) as f:
        return f.read().splitlines()


def run_error(main, argv):
    """Run a converter that must fail; return its error message."""
    with pytest.raises(SystemExit) as exc_info:
        main(argv)
    message = exc_info.value.code
    assert isinstance(message, str), message
    assert 'error' in message
    return message


# ---------------------------------------------------------------------------
# _common
# ---------------------------------------------------------------------------
def test_depth_and_label_rules():
    depth = np.array([[1.0, np.nan, -1.0, 70.0], [0.0014, np.inf, 0.0, 2.5]])
    np.testing.assert_array_equal(
        common.metres_to_mm(depth), [[1000, 0, 0, 65535], [1, 0, 0, 2500]])
    assert common.metres_to_mm(depth).dtype == np.uint16

    raw = np.array([0, 1234 << 3, 0x0007, 0xFFFF], dtype=np.uint16)
    np.testing.assert_array_equal(
        common.rotate_right_3(raw), [0, 1234, 0xE000, 0xFFFF])

    lut = common.build_label_lut([3, 1, 40], 40, 'm')
    np.testing.assert_array_equal(lut, [255, 2, 0, 39])
    np.testing.assert_array_equal(
        common.apply_label_lut(np.array([[0, 1], [2, 3]]), lut, 'x', 'y'),
        [[255, 2], [0, 39]])
    with pytest.raises(common.ConversionError, match='label value 4'):
        common.apply_label_lut(np.array([4]), lut, 'x', 'y')
    with pytest.raises(common.ConversionError, match='outside'):
        common.build_label_lut([41], 40, 'm')


# ---------------------------------------------------------------------------
# NYU Depth v2
# ---------------------------------------------------------------------------
def nyu_argv(data, out, *extra):
    p = data['paths']
    return [p['mat'], p['splits'], p['mapping'], '-o', str(out), *extra]


def check_nyu_output(data, out):
    assert read_list(out / 'train.txt') == ['000001', '000003', '000004']
    assert read_list(out / 'test.txt') == ['000002', '000005']
    map_class = data['map_class'].astype(int)
    for index in range(1, fx.NYU_N + 1):
        name = f'{index:06d}'
        rgb = read_png(out / 'rgb' / f'{name}.png')
        depth = read_png(out / 'depth' / f'{name}.png')
        label = read_png(out / 'label' / f'{name}.png')
        assert rgb.dtype == np.uint8 and rgb.shape == (fx.NYU_H, fx.NYU_W, 3)
        assert depth.dtype == np.uint16
        assert depth.shape == (fx.NYU_H, fx.NYU_W)
        assert label.dtype == np.uint8
        assert label.shape == (fx.NYU_H, fx.NYU_W)
        # cv2 reads BGR; the source is RGB
        np.testing.assert_array_equal(rgb[..., ::-1],
                                      data['images'][..., index - 1])
        src_depth = data['depths'][..., index - 1]
        valid = np.isfinite(src_depth) & (src_depth > 0)
        expected = np.zeros(src_depth.shape, np.int64)
        expected[valid] = np.minimum(np.rint(src_depth[valid] * 1000),
                                     65535).astype(np.int64)
        np.testing.assert_array_equal(depth, expected)
        src_label = data['labels'][..., index - 1].astype(int)
        expected = np.where(src_label == 0, 255,
                            map_class[np.maximum(src_label, 1) - 1] - 1)
        np.testing.assert_array_equal(label, expected)
        assert label[0, 0] == 255 and label[0, 1] == 39
        assert label[0, 2] == 6
    first = read_png(out / 'depth' / '000001.png')
    assert first[0, :6].tolist() == [1000, 0, 0, 65535, 1, 0]
    assert first[1, 0] == 2500


@pytest.mark.parametrize('nproc', [1, 2])
def test_nyu_pixel_exact(tmp_path, capsys, nproc):
    data = fx.make_nyu(str(tmp_path))
    out = tmp_path / 'out'
    nyu.main(nyu_argv(data, out, '--nproc', str(nproc)))
    check_nyu_output(data, out)
    assert sorted(os.listdir(out /
                             'rgb')) == [f'{i:06d}.png' for i in range(1, 6)]
    summary = capsys.readouterr().out
    assert '#train: 3' in summary and '#test: 2' in summary
    assert str(out) in summary


def test_nyu_v73_splits_and_column_mapping(tmp_path):
    data = fx.make_nyu(str(tmp_path))
    p = data['paths']
    fx.write_nyu_splits(p['splits'], fx.NYU_TRAIN, fx.NYU_TEST, v73=True)
    assert h5py.is_hdf5(p['splits'])
    scipy.io.savemat(p['mapping'],
                     {'mapClass': data['map_class'].reshape(-1, 1)})
    out = tmp_path / 'out'
    nyu.main(nyu_argv(data, out))
    check_nyu_output(data, out)


def test_nyu_split_order_is_kept(tmp_path):
    data = fx.make_nyu(str(tmp_path))
    fx.write_nyu_splits(data['paths']['splits'], [4, 1], [5, 2, 3])
    out = tmp_path / 'out'
    nyu.main(nyu_argv(data, out))
    assert read_list(out / 'train.txt') == ['000004', '000001']
    assert read_list(out / 'test.txt') == ['000005', '000002', '000003']


def test_nyu_converts_only_split_frames(tmp_path):
    data = fx.make_nyu(str(tmp_path))
    fx.write_nyu_splits(data['paths']['splits'], [3, 1], [5])
    out = tmp_path / 'out'
    nyu.main(nyu_argv(data, out))
    for sub in ('rgb', 'depth', 'label'):
        assert sorted(os.listdir(
            out / sub)) == ['000001.png', '000003.png', '000005.png']


def test_nyu_missing_file(tmp_path):
    data = fx.make_nyu(str(tmp_path))
    os.remove(data['paths']['mapping'])
    message = run_error(nyu.main, nyu_argv(data, tmp_path / 'out'))
    assert data['paths']['mapping'] in message and 'not found' in message
    assert not (tmp_path / 'out').exists()


def test_nyu_missing_variable(tmp_path):
    data = fx.make_nyu(str(tmp_path))
    p = data['paths']
    scipy.io.savemat(p['splits'], {'trainNdxs': np.array([[1.0], [3.0]])})
    message = run_error(nyu.main, nyu_argv(data, tmp_path / 'out'))
    assert p['splits'] in message and "'testNdxs'" in message

    fx.write_nyu_splits(p['splits'], fx.NYU_TRAIN, fx.NYU_TEST)
    fx.write_mat73(p['mat'], {
        'images': data['images'],
        'depths': data['depths']
    })
    message = run_error(nyu.main, nyu_argv(data, tmp_path / 'out'))
    assert p['mat'] in message and "'labels'" in message


def test_nyu_split_index_out_of_range(tmp_path):
    data = fx.make_nyu(str(tmp_path))
    fx.write_nyu_splits(data['paths']['splits'], [1, 3], [2, 6])
    message = run_error(nyu.main, nyu_argv(data, tmp_path / 'out'))
    assert data['paths']['splits'] in message
    assert 'testNdxs' in message and '6' in message
    assert 'out of range' in message


def test_nyu_split_not_disjoint(tmp_path):
    data = fx.make_nyu(str(tmp_path))
    fx.write_nyu_splits(data['paths']['splits'], [1, 3], [3, 5])
    message = run_error(nyu.main, nyu_argv(data, tmp_path / 'out'))
    assert data['paths']['splits'] in message and 'disjoint' in message


def test_nyu_label_beyond_mapping(tmp_path):
    data = fx.make_nyu(str(tmp_path))
    p = data['paths']
    scipy.io.savemat(p['mapping'],
                     {'mapClass': data['map_class'][:800].reshape(1, -1)})
    message = run_error(nyu.main, nyu_argv(data, tmp_path / 'out'))
    assert p['mat'] in message and p['mapping'] in message
    assert 'label value 894' in message


def test_nyu_wrong_shape(tmp_path):
    data = fx.make_nyu(str(tmp_path))
    p = data['paths']
    fx.write_mat73(
        p['mat'], {
            'images': data['images'],
            'depths': data['depths'][:, :-1],
            'labels': data['labels']
        })
    message = run_error(nyu.main, nyu_argv(data, tmp_path / 'out'))
    assert p['mat'] in message and "'depths'" in message
    assert '(6, 7, 5)' in message


# ---------------------------------------------------------------------------
# SUN RGB-D
# ---------------------------------------------------------------------------
def sun_argv(data, out, *extra):
    p = data['paths']
    return [p['root'], p['toolbox'], '-o', str(out), *extra]


def check_sun_output(data, out, depth_key='depth_mm'):
    assert read_list(out / 'train.txt') == ['000001', '000003']
    assert read_list(out / 'test.txt') == ['000002', '000004']
    for index, entry in enumerate(data['entries'], 1):
        name = f'{index:06d}'
        rgb = read_png(out / 'rgb' / f'{name}.png')
        depth = read_png(out / 'depth' / f'{name}.png')
        label = read_png(out / 'label' / f'{name}.png')
        h, w = entry['label'].shape
        assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8
        assert depth.dtype == np.uint16 and label.dtype == np.uint8
        np.testing.assert_array_equal(rgb, entry['bgr'])
        np.testing.assert_array_equal(depth, entry[depth_key])
        src = entry['label'].astype(int)
        np.testing.assert_array_equal(label, np.where(src == 0, 255, src - 1))
        assert label[0, :3].tolist() == [255, 36, 0]


def test_sunrgbd_pixel_exact(tmp_path, capsys):
    data = fx.make_sunrgbd(str(tmp_path))
    out = tmp_path / 'out'
    sunrgbd.main(sun_argv(data, out))
    check_sun_output(data, out)
    first = read_png(out / 'depth' / '000001.png')
    assert first[0, 0] == 0 and first[0, 1] == 1234
    assert first[1, 0] == 0xE000
    assert len(os.listdir(out / 'label')) == 4
    summary = capsys.readouterr().out
    assert '#train: 2' in summary and '#test: 2' in summary


def test_sunrgbd_depth_bfx_zip_layout_nproc(tmp_path):
    # toolbox and data root given as their parents (layout of the zips)
    outer = tmp_path / 'unpacked'
    data = fx.make_sunrgbd(str(outer))
    out = tmp_path / 'out'
    sunrgbd.main([
        str(outer),
        str(outer), '-o',
        str(out), '--depth-dir', 'depth_bfx', '--nproc', '2'
    ])
    check_sun_output(data, out, depth_key='depth_bfx_mm')
    assert read_png(out / 'depth' / '000001.png')[0, 0] == 777


def test_sunrgbd_v73_meta_sequence_name(tmp_path):
    data = fx.make_sunrgbd(str(tmp_path), meta_v73=True)
    assert h5py.is_hdf5(data['paths']['meta'])
    out = tmp_path / 'out'
    sunrgbd.main(sun_argv(data, out))
    check_sun_output(data, out)


def test_sunrgbd_overrides(tmp_path):
    data = fx.make_sunrgbd(str(tmp_path))
    p = data['paths']
    moved = {}
    for key in ('meta', 'seg', 'split'):
        moved[key] = str(tmp_path / f'moved_{key}.mat')
        os.rename(p[key], moved[key])
    out = tmp_path / 'out'
    sunrgbd.main(
        sun_argv(data, out, '--meta', moved['meta'], '--seg', moved['seg'],
                 '--split', moved['split']))
    check_sun_output(data, out)


def test_sunrgbd_missing_file(tmp_path):
    data = fx.make_sunrgbd(str(tmp_path))
    p = data['paths']
    os.remove(p['seg'])
    message = run_error(sunrgbd.main, sun_argv(data, tmp_path / 'out'))
    assert p['seg'] in message and 'not found' in message

    data = fx.make_sunrgbd(str(tmp_path / 'b'))
    scene = fx.SUN_SCENES[2]
    depth = osp.join(data['paths']['root'], *scene[0].split('/'), 'depth',
                     scene[2])
    os.remove(depth)
    message = run_error(sunrgbd.main, sun_argv(data, tmp_path / 'out'))
    assert depth in message and 'entry 3' in message


def test_sunrgbd_missing_variable(tmp_path):
    data = fx.make_sunrgbd(str(tmp_path))
    p = data['paths']
    fx.write_mat73(p['seg'], {'seg37list': ['wall']})
    message = run_error(sunrgbd.main, sun_argv(data, tmp_path / 'out'))
    assert p['seg'] in message and "'SUNRGBD2Dseg'" in message

    fx.write_mat73(
        p['seg'],
        {'SUNRGBD2Dseg': fx.Struct([{
            'seglabelall': np.zeros((2, 2))
        }] * 4)})
    message = run_error(sunrgbd.main, sun_argv(data, tmp_path / 'out'))
    assert p['seg'] in message and "'seglabel'" in message

    data = fx.make_sunrgbd(str(tmp_path / 'b'))
    p = data['paths']
    scipy.io.savemat(p['split'], {'alltrain': fx.cell(['/x/SUNRGBD/a'])})
    message = run_error(sunrgbd.main, sun_argv(data, tmp_path / 'out'))
    assert p['split'] in message and "'alltest'" in message


def test_sunrgbd_meta_path_without_root_component(tmp_path):
    data = fx.make_sunrgbd(str(tmp_path))
    p = data['paths']
    meta = scipy.io.loadmat(p['meta'])['SUNRGBDMeta']
    meta[0, 1]['rgbpath'] = np.array(['/elsewhere/kv2/x/image/0000103.jpg'])
    scipy.io.savemat(p['meta'], {'SUNRGBDMeta': meta})
    message = run_error(sunrgbd.main, sun_argv(data, tmp_path / 'out'))
    assert p['meta'] in message and 'SUNRGBDMeta(2)' in message
    assert 'rgbpath' in message


def test_sunrgbd_size_mismatch(tmp_path):
    data = fx.make_sunrgbd(str(tmp_path), seg_sizes=[None, None, (4, 7), None])
    message = run_error(sunrgbd.main, sun_argv(data, tmp_path / 'out'))
    scene = fx.SUN_SCENES[2][0]
    assert f'entry 3 ({scene})' in message
    assert osp.join(*scene.split('/'), 'image', fx.SUN_SCENES[2][1]) in message
    assert '(7, 4, 3)' in message and '(7, 4)' in message
    assert '(4, 7)' in message


def test_sunrgbd_label_out_of_range(tmp_path):
    data = fx.make_sunrgbd(str(tmp_path), seg_values=[None, 38, None, None])
    message = run_error(sunrgbd.main, sun_argv(data, tmp_path / 'out'))
    assert data['paths']['seg'] in message
    assert 'SUNRGBD2Dseg(2)' in message and 'label value 38' in message


def test_sunrgbd_unmatched_scene(tmp_path):
    data = fx.make_sunrgbd(str(tmp_path))
    p = data['paths']
    prefix = fx.AUTHORS_PREFIX + 'SUNRGBD/'
    train = [prefix + s[0] for s in fx.SUN_SCENES if s[4] == 'train']
    test = [prefix + fx.SUN_SCENES[1][0]]  # xtion scene in neither list
    fx.write_sun_split(p['split'], train, test)
    message = run_error(sunrgbd.main, sun_argv(data, tmp_path / 'out'))
    assert 'entry 4' in message and fx.SUN_SCENES[3][0] in message
    assert p['split'] in message

    out = tmp_path / 'out'
    sunrgbd.main(sun_argv(data, out, '--unmatched', 'test'))
    assert read_list(out / 'test.txt') == ['000002', '000004']

    fx.write_sun_split(p['split'], train, test + [train[0]])
    message = run_error(sunrgbd.main, sun_argv(data, tmp_path / 'out'))
    assert p['split'] in message and 'disjoint' in message


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('script', ['nyu.py', 'sunrgbd.py'])
def test_cli_help(script):
    path = osp.join(REPO_ROOT, 'tools', 'dataset_converters', script)
    result = subprocess.run([sys.executable, path, '--help'],
                            capture_output=True,
                            text=True,
                            cwd=REPO_ROOT,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert 'usage:' in result.stdout and '--out-dir' in result.stdout
    assert '--nproc' in result.stdout
