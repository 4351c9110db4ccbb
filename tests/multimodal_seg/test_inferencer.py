"""MultiModalSegInferencer: single samples, lists, folders, arrays, the
outputs it writes, every kind of segmentation config, and bad inputs."""
import glob
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from ..utils import REPO_ROOT, random_seg_checkpoint

TOKENFUSION = osp.join(
    REPO_ROOT, 'configs/tokenfusion/'
    'tokenfusion_mit-tiny_1xb8-1k_synthetic-rgbd-64x64.py')
SYNTHETIC_CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO_ROOT, 'configs/*/*synthetic-rgb*.py')) +
    glob.glob(osp.join(REPO_ROOT, 'configs/*/*synthetic-depth*.py')))


def write_rgbd(folder, name, seed, size=(48, 64), event=False):
    """A random RGB PNG, a 16-bit depth PNG (mm) and, with ``event``, an
    8-bit event and LiDAR map at half / full size; returns their paths."""
    rng = np.random.default_rng(seed)
    h, w = size
    paths = {}
    arrays = dict(
        rgb=rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        depth=rng.integers(500, 8000, (h, w), dtype=np.uint16))
    if event:
        arrays['event'] = rng.integers(
            0, 256, (h // 2, w // 2, 3), dtype=np.uint8)
        arrays['lidar'] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    for modality, array in arrays.items():
        (folder / modality).mkdir(parents=True, exist_ok=True)
        paths[modality] = str(folder / modality / f'{name}.png')
        cv2.imwrite(paths[modality], array)
    return paths


@pytest.fixture(scope='module')
def tokenfusion(tmp_path_factory):
    """The demo's TokenFusion model with random weights, and its
    inferencer."""
    from projects.multimodal_seg.apis import MultiModalSegInferencer
    path = tmp_path_factory.mktemp('ckpt') / 'tokenfusion.pth'
    random_seg_checkpoint(TOKENFUSION, path)
    return MultiModalSegInferencer(
        TOKENFUSION, weights=str(path), device='cpu'), path


def direct_prediction(model, rgb_path, depth_path):
    """The ensemble and per-stream class maps of ``model`` on one sample
    loaded by hand: BGR image and raw depth (mm), as the test pipeline."""
    from mmseg.structures import SegDataSample
    rgb = cv2.imread(rgb_path)
    depth = cv2.imread(depth_path, cv2.IMREAD_UNCHANGED).astype(np.float32)
    packed = torch.from_numpy(
        np.concatenate([rgb.astype(np.float32), depth[..., None]],
                       axis=2)).permute(2, 0, 1)
    h, w = rgb.shape[:2]
    sample = SegDataSample(
        metainfo=dict(
            img_shape=(h, w), ori_shape=(h, w), modalities=('rgb', 'depth')))
    with torch.no_grad():
        pred = model.test_step(dict(inputs=[packed], data_samples=[sample]))[0]
    streams = {
        s: pred.get(f'pred_sem_seg_{s}').data[0].numpy()
        for s in model.stream_names
    }
    return pred.pred_sem_seg.data[0].numpy(), streams


def test_single_sample_equals_direct_forward(tmp_path, tokenfusion):
    inferencer, _ = tokenfusion
    paths = write_rgbd(tmp_path, 'a', seed=1)
    result = inferencer(dict(rgb=paths['rgb'], depth=paths['depth']))
    expected, streams = direct_prediction(inferencer.model, paths['rgb'],
                                          paths['depth'])
    assert result['predictions'].shape == (48, 64)
    np.testing.assert_array_equal(result['predictions'], expected)
    assert set(result['stream_predictions']) == {'rgb', 'depth'}
    for stream, labels in streams.items():
        np.testing.assert_array_equal(result['stream_predictions'][stream],
                                      labels)
    # the streams disagree somewhere on random weights: the dict is not one
    # map under two names
    assert (streams['rgb'] != streams['depth']).any()

    # arrays as the loaders read the files give the same logits
    arrays = dict(
        rgb=cv2.imread(paths['rgb']),
        depth=cv2.imread(paths['depth'], cv2.IMREAD_UNCHANGED))
    from_file = inferencer(
        dict(rgb=paths['rgb'], depth=paths['depth']), return_datasamples=True)
    from_arrays = inferencer(arrays, return_datasamples=True)
    assert torch.equal(from_arrays.seg_logits.data, from_file.seg_logits.data)

    # depth is read in the file's unit: the same depth in metres is another
    # input (the config's normalisation expects millimetres)
    metres = dict(arrays, depth=arrays['depth'].astype(np.float32) / 1000)
    in_metres = inferencer(metres, return_datasamples=True)
    assert not torch.allclose(in_metres.seg_logits.data,
                              from_file.seg_logits.data)


def test_list_folder_batches_and_outputs(tmp_path, tokenfusion):
    inferencer, _ = tokenfusion
    samples = [
        write_rgbd(tmp_path / 'in', name, seed=i)
        for i, name in enumerate(('b', 'a', 'c'))
    ]
    as_list = inferencer([{
        'rgb': s['rgb'],
        'depth': s['depth']
    } for s in samples])
    out = tmp_path / 'out'
    from_folders = inferencer(
        dict(rgb=str(tmp_path / 'in/rgb'), depth=str(tmp_path / 'in/depth')),
        batch_size=2,
        out_dir=str(out),
        fusion_maps=True)
    assert len(from_folders['predictions']) == 3
    # folders are paired by stem and sorted: a, b, c = list items 1, 0, 2
    for i, j in enumerate((1, 0, 2)):
        np.testing.assert_array_equal(from_folders['predictions'][i],
                                      as_list['predictions'][j])
        for stream in ('rgb', 'depth'):
            np.testing.assert_array_equal(
                from_folders['stream_predictions'][i][stream],
                as_list['stream_predictions'][j][stream])

    palette = np.asarray(inferencer.model.dataset_meta['palette'], np.uint8)
    for i, name in enumerate('abc'):
        labels = cv2.imread(str(out / 'pred' / f'{name}.png'), 0)
        np.testing.assert_array_equal(labels, from_folders['predictions'][i])
        depth_labels = cv2.imread(str(out / 'pred' / f'{name}_depth.png'), 0)
        np.testing.assert_array_equal(
            depth_labels, from_folders['stream_predictions'][i]['depth'])
        mask = cv2.imread(str(out / 'mask' / f'{name}.png'))[..., ::-1]
        np.testing.assert_array_equal(mask, palette[labels])
        vis = cv2.imread(str(out / 'vis' / f'{name}.png'))
        # RGB | depth | prediction panels of the demo's visualizer
        assert vis.shape == (48, 3 * 64, 3)
        rgb = cv2.imread(samples['bac'.index(name)]['rgb'])
        np.testing.assert_array_equal(vis[:, :64], rgb)
        fusion = cv2.imread(str(out / 'fusion' / f'{name}.png'))
        assert fusion is not None and fusion.shape[0] > 64


def test_fusion_maps_need_token_exchange(tmp_path):
    from projects.multimodal_seg.apis import MultiModalSegInferencer
    config = TOKENFUSION.replace('tokenfusion_mit', 'tokenfusion-nofusion_mit')
    random_seg_checkpoint(config, tmp_path / 'nofusion.pth')
    inferencer = MultiModalSegInferencer(
        config, weights=str(tmp_path / 'nofusion.pth'), device='cpu')
    paths = write_rgbd(tmp_path, 'a', seed=0)
    with pytest.raises(TypeError, match='has no TokenExchange'):
        inferencer(
            dict(rgb=paths['rgb'], depth=paths['depth']), fusion_maps=True)


@pytest.mark.parametrize(
    'config', SYNTHETIC_CONFIGS, ids=lambda p: osp.basename(p)[:-3])
def test_every_synthetic_config(tmp_path, config):
    """TokenFusion, GeminiFusion MiT / Swin, channel exchange, no fusion,
    four modalities (event maps at half size, resized by the config's
    loader), early concat and single-modality baselines, by config name."""
    from projects.multimodal_seg.apis import MultiModalSegInferencer
    random_seg_checkpoint(config, tmp_path / 'model.pth')
    name = osp.basename(config)[:-3]
    inferencer = MultiModalSegInferencer(
        name, weights=str(tmp_path / 'model.pth'), device='cpu')
    paths = write_rgbd(tmp_path, 'a', seed=3, event=True)
    inputs = {m: paths[m] for m in inferencer.modalities}
    result = inferencer(inputs, out_dir=str(tmp_path / 'out'))
    assert result['predictions'].shape == (48, 64)
    assert set(result['stream_predictions']) == set(
        getattr(inferencer.model, 'stream_names', ()))
    assert osp.isfile(tmp_path / 'out' / 'vis' / 'a.png')
    num_classes = len(inferencer.model.dataset_meta['classes'])
    assert result['predictions'].max() < num_classes


def test_four_modalities_from_arrays_equal_files(tmp_path):
    """8-bit maps given in memory go through the config's loaders as their
    files do (the half-size event map enlarged by its loader)."""
    from projects.multimodal_seg.apis import MultiModalSegInferencer
    config = TOKENFUSION.replace('1k_synthetic-rgbd-', '3k_synthetic-rgbdel-')
    random_seg_checkpoint(config, tmp_path / 'model.pth')
    inferencer = MultiModalSegInferencer(
        config, weights=str(tmp_path / 'model.pth'), device='cpu')
    paths = write_rgbd(tmp_path, 'a', seed=5, event=True)
    from_files = inferencer(paths, return_datasamples=True)
    arrays = {m: cv2.imread(p, cv2.IMREAD_UNCHANGED) for m, p in paths.items()}
    assert arrays['event'].shape == (24, 32, 3)
    from_arrays = inferencer(arrays, return_datasamples=True)
    assert torch.equal(from_arrays.seg_logits.data, from_files.seg_logits.data)
    with pytest.raises(TypeError, match='event array: expected a uint8'):
        inferencer(dict(arrays, event=arrays['event'].astype(np.float32)))


# ---------------------------------------------------------------------------
# bad input


def test_bad_sample_inputs(tmp_path, tokenfusion):
    inferencer, _ = tokenfusion
    paths = write_rgbd(tmp_path, 'a', seed=0)
    rgb, depth = paths['rgb'], paths['depth']
    with pytest.raises(KeyError, match=r"missing \['depth'\]"):
        inferencer(dict(rgb=rgb))
    with pytest.raises(KeyError, match=r"unexpected \['hha'\]"):
        inferencer(dict(rgb=rgb, depth=depth, hha=rgb))
    with pytest.raises(FileNotFoundError, match='depth file .*nope.png'):
        inferencer(dict(rgb=rgb, depth=str(tmp_path / 'nope.png')))
    broken = tmp_path / 'broken.png'
    broken.write_bytes(b'not a png')
    with pytest.raises(OSError, match='Cannot decode depth image .*broken'):
        inferencer(dict(rgb=rgb, depth=str(broken)))
    with pytest.raises(OSError, match='cannot decode rgb image .*broken'):
        inferencer(dict(rgb=str(broken), depth=depth))
    small = tmp_path / 'small.png'
    cv2.imwrite(str(small), np.ones((24, 32), np.uint16))
    with pytest.raises(
            ValueError,
            match='depth .*small.png is 32x24 '
            r'\(WxH\) but the RGB image is 64x48'):
        inferencer(dict(rgb=rgb, depth=str(small)))
    grey = tmp_path / 'grey.png'
    cv2.imwrite(str(grey), np.ones((48, 64), np.uint8))
    with pytest.raises(TypeError, match='grey.png stores uint8, expected'):
        inferencer(dict(rgb=rgb, depth=str(grey)))
    with pytest.raises(TypeError, match='depth array stores int32'):
        inferencer(dict(rgb=rgb, depth=np.ones((48, 64), np.int32)))
    with pytest.raises(
            ValueError, match=r'depth \(the depth array\) is 32x24'):
        inferencer(dict(rgb=rgb, depth=np.ones((24, 32), np.uint16)))
    with pytest.raises(ValueError, match=r'rgb array must be \(H, W, 3\)'):
        inferencer(dict(rgb=np.ones((48, 64), np.uint8), depth=depth))
    with pytest.raises(TypeError, match='depth is a list'):
        inferencer(dict(rgb=rgb, depth=[1, 2]))
    with pytest.raises(TypeError, match='expected a dict'):
        inferencer(rgb)


def test_bad_folders(tmp_path, tokenfusion):
    inferencer, _ = tokenfusion
    for i, name in enumerate('ab'):
        write_rgbd(tmp_path, name, seed=i)
    (tmp_path / 'depth' / 'b.png').unlink()
    with pytest.raises(
            FileNotFoundError,
            match=r'rgb/b.png has no depth partner: no file b\.\* '
            'in .*depth'):
        inferencer(
            dict(rgb=str(tmp_path / 'rgb'), depth=str(tmp_path / 'depth')))
    with pytest.raises(ValueError, match='as a folder or none'):
        inferencer(
            dict(
                rgb=str(tmp_path / 'rgb'),
                depth=str(tmp_path / 'depth' / 'a.png')))
    with pytest.raises(KeyError, match=r"missing \['depth'\]"):
        inferencer(dict(rgb=str(tmp_path / 'rgb')))


def test_bad_checkpoints(tmp_path, tokenfusion):
    from projects.multimodal_seg.apis import MultiModalSegInferencer
    _, path = tokenfusion
    checkpoint = torch.load(path, weights_only=False)

    def inferencer_for(ckpt):
        torch.save(ckpt, tmp_path / 'bad.pth')
        return MultiModalSegInferencer(
            TOKENFUSION, weights=str(tmp_path / 'bad.pth'), device='cpu')

    swapped = dict(
        checkpoint,
        meta=dict(
            dataset_meta=dict(
                checkpoint['meta']['dataset_meta'],
                modalities=('depth', 'rgb'))))
    with pytest.raises(
            ValueError,
            match=r"bad.pth was trained on modalities "
            r"\('depth', 'rgb'\) but the config feeds "
            r"\('rgb', 'depth'\)"):
        inferencer_for(swapped)
    with pytest.raises(KeyError, match='bad.pth records no modalities'):
        inferencer_for(dict(checkpoint, meta={}))
    state = dict(checkpoint['state_dict'])
    state.pop('alpha')
    with pytest.raises(
            ValueError,
            match='bad.pth does not fit the model of the config: '
            r'1 key\(s\) missing from the checkpoint: alpha'):
        inferencer_for(dict(checkpoint, state_dict=state))
    with pytest.raises(ValueError, match='needs the trained weights'):
        MultiModalSegInferencer(TOKENFUSION, device='cpu')
    with pytest.raises(FileNotFoundError, match='did you mean'):
        MultiModalSegInferencer(
            'tokenfusion_mit-tiny_1xb8-1k_synthetic-rgbd', weights=str(path))
