"""TokenFusion3DInferencer: mmdet3d's multi-modality inferencer conventions
for the 3D detectors of this repository, on the real SUN RGB-D frame
(single image, depth2img) and the mini ScanNet scene (posed views,
lidar2img), with untrained checkpoints of the configs (see
``tests.utils.untrained_checkpoint``): the predictions must be those of the
config's own dataset and test pipeline, every input kind must give them,
and bad inputs must be errors that name what is wrong."""
import json
import os.path as osp
import pickle
import shutil

import cv2
import mmcv
import numpy as np
import pytest
import torch
from mmdet3d.registry import INFERENCERS
from mmdet3d.structures import DepthInstance3DBoxes
from mmengine.config import Config

from projects.multimodal_det3d.apis import (TokenFusion3DInferencer,
                                            draw_boxes_3d, select_boxes)
from ..utils import (REPO_ROOT, dataset_prediction, small_tokenfusion3d_model,
                     sunrgbd_layout, untrained_checkpoint)
from .scannet_scene import (BAD_FRAME, IMG_H, IMG_W, NUM_FRAMES, OUT_H, OUT_W,
                            SCENE, build_converted_scene)

TINY_FUSION = osp.join(
    REPO_ROOT, 'configs/tokenfusion3d/'
    'tokenfusion3d_groupfree3d-tiny_vit-4x64_1xb8-24e_synthetic-3d.py')
TINY_POINTS = osp.join(
    REPO_ROOT, 'configs/groupfree3d/groupfree3d_tiny_1xb8-24e_synthetic-3d.py')
SUNRGBD_FUSION = osp.join(
    REPO_ROOT, 'configs/tokenfusion3d/'
    'tokenfusion3d_groupfree3d-L6-O256_yolos-ti_4xb8-600e_sunrgbd-3d.py')
SCANNET_FUSION = osp.join(
    REPO_ROOT, 'configs/tokenfusion3d/tokenfusion3d_groupfree3d-w2x-'
    'L12-O512_yolos-s_4xb8-80e_scannet-3d-5view.py')

# The 5-view ScanNet config at a size that predicts in about a second
# (the real size takes ~20 s on a 2-core CPU): 2000 points, a 64-d
# GroupFree3D with 2 decoder layers, a 2-block 64-d ViT; the views,
# calibration, alignment and test pipeline are the config's.
TINY_MULTIVIEW = """
_base_ = [{base!r}]
""" + small_tokenfusion3d_model(
    num_points=(256, 128, 64, 32), num_proposal=32, vit_layers=2) + """
model['test_cfg'] = dict(prediction_stages='last')


def shrink(step):
    if step['type'] == 'MultiScaleFlipAug3D':
        return dict(step, transforms=[shrink(s) for s in step['transforms']])
    if step['type'] == 'PointSample':
        return dict(step, num_points=2000)
    if step['type'] == 'LoadMultiViewPosedImages':
        return dict(step, img_scale=({out_w}, {out_h}))
    return step


test_pipeline = [shrink(step) for step in _base_.test_pipeline]
test_dataloader = dict(
    dataset=dict(
        data_root={root!r},
        ann_file='scannet_infos_train_posed.pkl',
        pipeline=test_pipeline))
"""


def sunrgbd_dataset(root, config):
    """mmdet3d's SUN RGB-D dataset of the frame with ``config``'s test
    pipeline and classes (the synthetic configs' own dataset type would
    generate scenes)."""
    cfg = Config.fromfile(config)
    return dict(
        type='SUNRGBDDataset',
        data_root=str(root),
        ann_file='sunrgbd_000017_infos.pkl',
        data_prefix=dict(pts='points', img='sunrgbd_trainval/image'),
        pipeline=cfg.test_dataloader.dataset.pipeline,
        metainfo=dict(classes=cfg.class_names),
        test_mode=True,
        box_type_3d='Depth')


def assert_same_boxes(pred, reference, atol=1e-5):
    assert len(pred) == len(reference) > 0
    assert torch.equal(pred.labels_3d, reference.labels_3d)
    assert torch.allclose(pred.scores_3d, reference.scores_3d, atol=atol)
    assert torch.allclose(
        pred.bboxes_3d.tensor, reference.bboxes_3d.tensor, atol=atol)


@pytest.fixture(scope='module')
def sun(tmp_path_factory):
    """The frame in the SUN RGB-D layout, plus a second scan ``b`` (every
    other point, the same image under another name) with its own info file
    and an info file of both."""
    root = sunrgbd_layout(tmp_path_factory.mktemp('sunrgbd'))
    points = np.fromfile(root / 'points' / '000017.bin', np.float32)
    points.reshape(-1, 6)[::2].tofile(root / 'points' / 'b.bin')
    image_dir = root / 'sunrgbd_trainval' / 'image'
    shutil.copy(image_dir / '000017.jpg', image_dir / 'b.jpg')
    with open(root / 'sunrgbd_000017_infos.pkl', 'rb') as f:
        infos = pickle.load(f)
    entry = infos['data_list'][0]
    other = dict(
        entry,
        lidar_points=dict(entry['lidar_points'], lidar_path='b.bin'),
        images=dict(CAM0=dict(entry['images']['CAM0'], img_path='b.jpg')))
    for name, entries in (('b_infos.pkl', [other]), ('both_infos.pkl',
                                                     [entry, other])):
        with open(root / name, 'wb') as f:
            pickle.dump(dict(infos, data_list=entries), f)
    checkpoints = root / 'checkpoints'
    checkpoints.mkdir()
    return dict(
        root=root,
        depth2img=np.array(entry['images']['CAM0']['depth2img']),
        checkpoints=checkpoints)


def scan(sun, name='000017', infos=None, **calib):
    root = sun['root']
    item = dict(
        points=str(root / 'points' / f'{name}.bin'),
        img=str(root / 'sunrgbd_trainval' / 'image' / f'{name}.jpg'))
    if not calib:
        calib['infos'] = str(
            root / (infos or ('sunrgbd_000017_infos.pkl'
                              if name == '000017' else f'{name}_infos.pkl')))
    item.update(calib)
    return item


_INFERENCERS = {}


def inferencer(sun, config):
    """One inferencer (and untrained checkpoint) per config and module."""
    if config not in _INFERENCERS:
        checkpoint = untrained_checkpoint(
            config,
            str(sun['checkpoints'] / (osp.basename(config)[:-3] + '.pth')))
        _INFERENCERS[config] = TokenFusion3DInferencer(
            config, weights=checkpoint, device='cpu', show_progress=False)
    return _INFERENCERS[config]


# ------------------------------------------------------- one image (SUN)
@pytest.mark.parametrize(
    'config', [TINY_FUSION, TINY_POINTS, SUNRGBD_FUSION],
    ids=['tiny-fusion', 'tiny-points-only', 'sunrgbd-fusion-real-size'])
def test_predictions_are_the_datasets_and_are_written(sun, config, tmp_path):
    model = inferencer(sun, config)
    reference = dataset_prediction(model.model,
                                   sunrgbd_dataset(sun['root'], config))
    boxes = reference.pred_instances_3d
    # draw about half the boxes
    score_thr = float(boxes.scores_3d.median())
    result = model(
        scan(sun),
        out_dir=str(tmp_path),
        pred_score_thr=score_thr,
        return_vis=True)
    assert len(result['predictions']) == len(result['visualization']) == 1
    pred = result['predictions'][0]
    assert pred['box_type_3d'] == 'Depth'
    assert pred['labels_3d'] == boxes.labels_3d.tolist()
    np.testing.assert_allclose(
        pred['scores_3d'], boxes.scores_3d.numpy(), atol=1e-5)
    np.testing.assert_allclose(
        pred['bboxes_3d'], boxes.bboxes_3d.tensor.numpy(), atol=1e-5)
    with open(tmp_path / 'preds' / '000017.json') as f:
        assert json.load(f) == pred

    # the drawing: the selected boxes on the original image, written as PNG
    image = mmcv.imread(scan(sun)['img'])
    drawn = result['visualization'][0]
    assert np.array_equal(
        mmcv.imread(str(tmp_path / 'vis_camera' / 'CAM0' / '000017.png')),
        drawn)
    chosen = select_boxes(boxes, score_thr)
    assert 0 < len(chosen) < len(boxes)
    expected = draw_boxes_3d(image, chosen.bboxes_3d, chosen.labels_3d.numpy(),
                             model.model.dataset_meta['classes'],
                             sun['depth2img'], 1.0, chosen.scores_3d.numpy())
    assert np.array_equal(drawn, expected)
    assert (drawn != image).any()


def test_datasamples_carry_the_calibration_and_depth_boxes(sun):
    model = inferencer(sun, TINY_FUSION)
    sample = model(scan(sun), return_datasamples=True)['predictions'][0]
    assert isinstance(sample.pred_instances_3d.bboxes_3d, DepthInstance3DBoxes)
    assert sample.metainfo['lidar_path'] == scan(sun)['points']
    np.testing.assert_allclose(
        sample.metainfo['depth2img'], sun['depth2img'], rtol=1e-6)
    # the tiny config resizes the 730x530 image to 256x186
    assert sample.metainfo['img_shape'] == (186, 256)


def test_every_input_kind_gives_the_same_boxes(sun):
    """A single dict, a list of dicts (any batch size), folders with an
    info file of both scans, and the matrix itself: one prediction per
    scan, in input order, whatever the batching."""
    model = inferencer(sun, TINY_FUSION)

    def boxes(inputs, **kwargs):
        out = model(inputs, return_datasamples=True, **kwargs)
        return [s.pred_instances_3d for s in out['predictions']]

    first, = boxes(scan(sun))
    second, = boxes(scan(sun, 'b'))
    assert len(first) != len(second) or not torch.allclose(
        first.bboxes_3d.tensor, second.bboxes_3d.tensor)
    pair = [scan(sun), scan(sun, 'b')]
    # mmdet3d's __call__ would return 3 predictions here (it returns the
    # first batch's again with the second)
    for batch_size in (1, 2, 3):
        got = boxes(pair, batch_size=batch_size)
        assert len(got) == 2, batch_size
        assert_same_boxes(got[0], first, atol=1e-4)
        assert_same_boxes(got[1], second, atol=1e-4)
    root = sun['root']
    folders = boxes(
        dict(
            points=str(root / 'points'),
            img=str(root / 'sunrgbd_trainval' / 'image'),
            infos=str(root / 'both_infos.pkl')))
    assert len(folders) == 2
    assert_same_boxes(folders[0], first)
    assert_same_boxes(folders[1], second)
    # an info file of several entries: the image's entry
    assert_same_boxes(boxes(scan(sun, 'b', infos='both_infos.pkl'))[0], second)
    assert_same_boxes(boxes(scan(sun, depth2img=sun['depth2img']))[0], first)
    # a 3x4 [depth2img | 0] projects the same
    as_3x4 = np.hstack([sun['depth2img'], np.zeros((3, 1))])
    assert_same_boxes(boxes(scan(sun, depth2img=as_3x4))[0], first)

    # the scan is sampled with its own seed; the caller's numpy state stays
    np.random.seed(3)
    expected = np.random.random_sample()
    np.random.seed(3)
    boxes(scan(sun))
    assert np.random.random_sample() == expected


def test_registered_in_mmdet3d(sun):
    """Built by name from mmdet3d's registry (which needs the fix of its
    misspelt location 'mmdet3d.api.inferencers')."""
    inferencer(sun, TINY_FUSION)  # writes the checkpoint
    checkpoint = str(sun['checkpoints'] /
                     (osp.basename(TINY_FUSION)[:-3] + '.pth'))
    built = INFERENCERS.build(
        dict(
            type='TokenFusion3DInferencer',
            model=TINY_FUSION,
            weights=checkpoint,
            device='cpu'))
    assert isinstance(built, TokenFusion3DInferencer)


def test_show_and_drawing_options(sun, monkeypatch, tmp_path):
    model = inferencer(sun, TINY_FUSION)
    shown = []
    monkeypatch.setattr(mmcv, 'imshow', lambda img, name, wait: shown.append(
        (img, name)))
    result = model(
        scan(sun),
        show=True,
        return_vis=True,
        pred_score_thr=0.0,
        agnostic_nms=0.25)
    drawn = result['visualization'][0]
    assert len(shown) == 1 and shown[0][1] == '000017'
    assert np.array_equal(shown[0][0], drawn)
    # class-agnostic NMS draws fewer boxes than per-class predictions
    every = model(
        scan(sun), return_vis=True, pred_score_thr=0.0)['visualization'][0]
    image = mmcv.imread(scan(sun)['img'])
    assert (drawn != image).any(-1).sum() < (every != image).any(-1).sum()
    nothing = model(
        scan(sun), return_vis=True, draw_pred=False)['visualization'][0]
    assert np.array_equal(nothing, image)
    # without return_vis, show or out_dir nothing is drawn
    assert model(scan(sun))['visualization'] == []
    assert not (tmp_path / 'vis_camera').exists()


# ------------------------------------------------------------ bad input
def bad_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def test_bad_scans_are_errors_naming_what_is_wrong(sun, tmp_path):
    model = inferencer(sun, TINY_FUSION)
    good = scan(sun)
    no_infos = {k: v for k, v in good.items() if k != 'infos'}
    cases = [
        ({
            k: v
            for k, v in good.items() if k != 'points'
        }, KeyError, 'no points'),
        ({
            k: v
            for k, v in good.items() if k != 'img'
        }, KeyError, 'no img'),
        (no_infos, KeyError, 'no calibration; give infos or depth2img'),
        (dict(good, calib='x.txt'), KeyError, r"unknown keys \['calib'\]"),
        (dict(good,
              depth2img=np.eye(3)), KeyError, 'both infos and depth2img'),
        ([good, 'x.bin'], TypeError, r'inputs\[1\]: expected a dict'),
        ('x.bin', TypeError, 'inputs must be a dict'),
        ([], ValueError, 'the list is empty'),
        (dict(good, points=str(tmp_path / 'none.bin')), FileNotFoundError,
         'none.bin does not exist'),
        (dict(good, points=bad_file(tmp_path, 'odd.bin', b'\0' * 28)),
         ValueError, r'odd.bin: 28 bytes .*records of 6 values'),
        (dict(good, points=bad_file(tmp_path, 'empty.bin',
                                    b'')), ValueError, 'empty.bin: 0 bytes'),
        (dict(good, img=str(tmp_path / 'none.jpg')), FileNotFoundError,
         'none.jpg does not exist'),
        (dict(good, img=bad_file(tmp_path, '000017.jpg', b'not a jpeg')),
         ValueError, '000017.jpg: not a readable image'),
        (dict(good, img=[good['img']]), TypeError, 'one image per scan'),
        (dict(good, infos=str(tmp_path / 'none.pkl')), FileNotFoundError,
         'infos file .*none.pkl does not exist'),
        (dict(good, infos=bad_file(tmp_path, 'junk.pkl', b'junk')), ValueError,
         'junk.pkl: not a readable info file'),
        (dict(no_infos, depth2img=np.eye(2)), ValueError,
         r'depth2img must be 3x3, 3x4 or 4x4, got shape \(2, 2\)'),
        (dict(no_infos, depth2img=np.full(
            (3, 3), np.nan)), ValueError, 'depth2img has non-finite values'),
        (dict(no_infos, depth2img=str(tmp_path / 'none.txt')),
         FileNotFoundError, 'depth2img: file .*none.txt does not exist'),
        (dict(no_infos, depth2img=bad_file(tmp_path, 'words.txt', b'a b')),
         ValueError, 'words.txt is not a text file of numbers'),
    ]
    for inputs, error, message in cases:
        with pytest.raises(error, match=message):
            model(inputs)


def write_infos(path, entry, **metainfo):
    with open(path, 'wb') as f:
        pickle.dump(dict(metainfo=metainfo, data_list=[entry]), f)
    return str(path)


def test_info_files_without_the_calibration(sun, tmp_path):
    model = inferencer(sun, TINY_FUSION)
    good = scan(sun)
    with open(good['infos'], 'rb') as f:
        entry = pickle.load(f)['data_list'][0]
    camera = entry['images']['CAM0']
    with open(tmp_path / 'list.pkl', 'wb') as f:
        pickle.dump([entry], f)
    with pytest.raises(ValueError, match="list.pkl: expected mmdet3d's v2"):
        model(dict(good, infos=str(tmp_path / 'list.pkl')))
    other_image = dict(
        entry, images=dict(CAM0=dict(camera, img_path='other.jpg')))
    with pytest.raises(
            KeyError, match=r'no entry for image 000017.jpg.*'
            r"\['other.jpg'\]"):
        model(dict(good, infos=write_infos(tmp_path / 'a.pkl', other_image)))
    with pytest.raises(
            KeyError,
            match=r"images.CAM2.img_path \(cameras in "
            r"the file: \['CAM0'\]\)"):
        model(good, cam_type='CAM2')
    no_calib = dict(
        entry,
        images=dict(CAM0={
            k: v
            for k, v in camera.items() if k != 'depth2img'
        }))
    with pytest.raises(
            KeyError,
            match=r'b.pkl: images.CAM0 of 000017.jpg '
            'has no depth2img'):
        model(dict(good, infos=write_infos(tmp_path / 'b.pkl', no_calib)))
    kitti_like = dict(
        entry,
        images=dict(
            CAM0=dict(
                img_path='000017.jpg', cam2img=np.eye(4), lidar2cam=np.eye(
                    4))))
    with pytest.raises(KeyError, match='has no depth2img'):
        model(dict(good, infos=write_infos(tmp_path / 'c.pkl', kitti_like)))
    wrong_points = dict(
        entry, lidar_points=dict(entry['lidar_points'], lidar_path='x.bin'))
    with pytest.raises(
            ValueError, match='is for points x.bin, not '
            '000017.bin'):
        model(dict(good, infos=write_infos(tmp_path / 'd.pkl', wrong_points)))


def test_checkpoints_that_do_not_fit_the_config(sun, tmp_path):
    points_only = untrained_checkpoint(TINY_POINTS,
                                       str(tmp_path / 'points_only.pth'))
    fusion = untrained_checkpoint(TINY_FUSION, str(tmp_path / 'fusion.pth'))
    with pytest.raises(
            ValueError,
            match=r'checkpoint .*points_only.pth does not fit the model of '
            r'.*tiny_vit-4x64.*synthetic-3d.py: \d+ key\(s\) missing from '
            r'the checkpoint: img_backbone.\w+.\* \(.*; the checkpoint is a '
            r'points only model, the config builds a points \+ image one'):
        TokenFusion3DInferencer(TINY_FUSION, weights=points_only)
    with pytest.raises(
            ValueError,
            match=r'fusion.pth does not fit .*groupfree3d_tiny.*: '
            r'\d+ key\(s\) not in the model: img_backbone.*the checkpoint '
            r'is a points \+ image model'):
        TokenFusion3DInferencer(TINY_POINTS, weights=fusion)
    # same modalities, other sizes
    real_size = Config.fromfile(SUNRGBD_FUSION)
    with pytest.raises(
            ValueError,
            match=r'key\(s\) of another shape: .*: checkpoint '
            r'\(\d+.*\), model \('):
        TokenFusion3DInferencer(real_size, weights=fusion)

    checkpoint = torch.load(fusion, weights_only=False)
    checkpoint['meta']['dataset_meta']['classes'][0] = 'sofa'
    torch.save(checkpoint, tmp_path / 'renamed.pth')
    with pytest.raises(
            ValueError,
            match=r"trained on classes \('sofa', "
            r"'table'.*names \('bed', 'table'"):
        TokenFusion3DInferencer(
            TINY_FUSION, weights=str(tmp_path / 'renamed.pth'))
    del checkpoint['meta']
    checkpoint['state_dict'] = {
        f'module.{k}': v
        for k, v in checkpoint['state_dict'].items()
    }
    torch.save(checkpoint, tmp_path / 'wrapped.pth')
    # a DataParallel-wrapped state dict without meta: the config's classes
    unwrapped = TokenFusion3DInferencer(
        TINY_FUSION, weights=str(tmp_path / 'wrapped.pth'))
    assert unwrapped.model.dataset_meta['classes'] == ('bed', 'table', 'chair',
                                                       'desk', 'bookshelf')

    with pytest.raises(FileNotFoundError, match='checkpoint .*none.pth'):
        TokenFusion3DInferencer(
            TINY_FUSION, weights=str(tmp_path / 'none'
                                     '.pth'))
    with pytest.raises(ValueError, match='weights: give the checkpoint'):
        TokenFusion3DInferencer(TINY_FUSION)
    with pytest.raises(FileNotFoundError, match='config nonexistent.py'):
        TokenFusion3DInferencer('nonexistent.py', weights=fusion)


def test_unknown_call_options_are_errors(sun):
    model = inferencer(sun, TINY_FUSION)
    with pytest.raises(ValueError, match='pred_score_threshold'):
        model(scan(sun), pred_score_threshold=0.5)
    with pytest.raises(ValueError, match='batch_size must be a positive'):
        model(scan(sun), batch_size=0)


# ---------------------------------------------------- posed views (ScanNet)
@pytest.fixture(scope='module')
def scannet(tmp_path_factory):
    root = tmp_path_factory.mktemp('scannet')
    build_converted_scene(root)
    config = root / 'tiny_multiview.py'
    config.write_text(
        TINY_MULTIVIEW.format(
            base=SCANNET_FUSION, root=f'{root}/', out_w=OUT_W, out_h=OUT_H))
    checkpoint = untrained_checkpoint(str(config), str(root / 'tiny.pth'))
    model = TokenFusion3DInferencer(
        str(config), weights=checkpoint, device='cpu', show_progress=False)
    good = [i for i in range(NUM_FRAMES) if i != BAD_FRAME]
    return dict(
        root=root,
        config=str(config),
        model=model,
        good=good,
        scan=dict(
            points=str(root / 'points' / f'{SCENE}.bin'),
            img=str(root / 'posed_images'),
            infos=str(root / 'scannet_infos_train_posed.pkl')))


def test_views_folder_gives_the_datasets_boxes(scannet, tmp_path):
    model = scannet['model']
    reference = dataset_prediction(model.model,
                                   model.cfg.test_dataloader.dataset)
    boxes = reference.pred_instances_3d
    score_thr = float(boxes.scores_3d.median())
    result = model(
        scannet['scan'],
        return_datasamples=True,
        out_dir=str(tmp_path),
        return_vis=True,
        pred_score_thr=score_thr)
    sample = result['predictions'][0]
    assert_same_boxes(sample.pred_instances_3d, boxes)
    views = sample.metainfo['img_path']
    assert views == reference.metainfo['img_path'] and len(views) == 5
    # 5 views of the 96x64 frames on disk, in one row
    drawn = result['visualization'][0]
    assert drawn.shape == (IMG_H, 5 * IMG_W, 3)
    assert np.array_equal(
        mmcv.imread(str(tmp_path / 'vis_camera' / 'views' / f'{SCENE}.png')),
        drawn)
    # each view drawn with its calibration for the frame on disk: the
    # model's (resized) lidar2img with the resize taken out, 0-based pixels
    chosen = select_boxes(boxes, score_thr)
    unresize = np.diag([IMG_W / OUT_W, IMG_H / OUT_H, 1., 1.])
    expected = []
    for view, path in enumerate(views):
        expected.append(
            draw_boxes_3d(
                mmcv.imread(path), chosen.bboxes_3d, chosen.labels_3d.numpy(),
                model.model.dataset_meta['classes'],
                unresize @ sample.metainfo['lidar2img'][view], 0.0,
                chosen.scores_3d.numpy()))
    assert np.array_equal(drawn, np.hstack(expected))
    assert (drawn != np.hstack([mmcv.imread(p) for p in views])).any()


def test_a_list_of_views_chooses_them(scannet):
    """Five listed files are the five views, in their order, with their own
    calibration (resized as the pipeline resizes the images)."""
    model = scannet['model']
    folder = scannet['root'] / 'posed_images' / SCENE
    frames = scannet['good'][::-2][:5]
    files = [str(folder / f'{i:05d}.jpg') for i in frames]
    sample = model(
        dict(scannet['scan'], img=files),
        return_datasamples=True)['predictions'][0]
    assert sample.metainfo['img_path'] == files
    with open(scannet['scan']['infos'], 'rb') as f:
        entry = pickle.load(f)['data_list'][0]
    resize = np.diag([OUT_W / IMG_W, OUT_H / IMG_H, 1., 1.])
    for view, frame in enumerate(frames):
        info = entry['images'][scannet['good'].index(frame)]
        assert info['img_path'] == f'{SCENE}/{frame:05d}.jpg'
        np.testing.assert_allclose(
            sample.metainfo['lidar2img'][view],
            resize @ np.array(info['cam2img']) @ np.array(info['lidar2cam']),
            rtol=1e-5,
            atol=1e-4)
    assert len(sample.pred_instances_3d) > 0


def test_views_bad_input(scannet, tmp_path):
    model = scannet['model']
    good = scannet['scan']
    with pytest.raises(ValueError, match='cam_type=.*loads posed views'):
        model(good, cam_type='CAM0')
    with pytest.raises(ValueError, match='is not a folder'):
        model(dict(good, img=str(tmp_path / 'x.jpg')))
    stray = tmp_path / SCENE / '00001.png'
    stray.parent.mkdir()
    cv2.imwrite(str(stray), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(
            ValueError, match=r'00001.png is not a view of '
            f'.*sample {SCENE}'):
        model(dict(good, img=[str(stray)]))
    with pytest.raises(KeyError, match=r"unknown keys \['depth2img'\]"):
        model(dict(good, depth2img=np.eye(3)))
    with open(good['infos'], 'rb') as f:
        entry = pickle.load(f)['data_list'][0]
    unaligned = {k: v for k, v in entry.items() if k != 'axis_align_matrix'}
    with pytest.raises(
            KeyError, match=f'sample {SCENE} has no '
            'axis_align_matrix'):
        model(dict(good, infos=write_infos(tmp_path / 'a.pkl', unaligned)))
    no_views = {k: v for k, v in entry.items() if k != 'images'}
    with pytest.raises(
            KeyError, match="no 'images' list.*"
            'scannet_posed_images.py'):
        model(dict(good, infos=write_infos(tmp_path / 'b.pkl', no_views)))
    missing = tmp_path / 'posed'
    shutil.copytree(scannet['root'] / 'posed_images', missing)
    (missing / SCENE / '00005.jpg').unlink()
    with pytest.raises(FileNotFoundError, match='00005.jpg does not exist'):
        model(dict(good, img=str(missing)))
