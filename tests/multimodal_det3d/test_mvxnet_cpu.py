"""mmdet3d's MVX-Net (KITTI, PointFusion + dynamic voxels + SECOND's sparse
encoder) computes its training losses and gradients on a CPU: the CPU
versions of ``dynamic_scatter`` and of the sparse convolution take over
from mmcv's CUDA-only kernels."""
import os.path as osp

import mmdet3d
import numpy as np
import torch
from mmdet3d.structures import Det3DDataSample, LiDARInstance3DBoxes
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

import projects.multimodal_det3d  # noqa: F401  (CPU dispatch)

MVXNET = osp.join(
    osp.dirname(mmdet3d.__file__), '.mim', 'configs', 'mvxnet',
    'mvxnet_fpn_dv_second_secfpn_8xb2-80e_kitti-3d-3class.py')


def test_mvxnet_losses_and_gradients_on_cpu():
    cfg = Config.fromfile(MVXNET)
    cfg.model.img_backbone.init_cfg = None  # random weights
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        from mmdet3d.registry import MODELS
        model = MODELS.build(cfg.model).train()
    # points in front of a camera looking along +x, inside the voxel range
    points = torch.rand(2000, 4) * torch.tensor([50., 40., 3., 1.]) + \
        torch.tensor([5., -20., -2.5, 0.])
    lidar2img = np.array([[600., -700., 0., 0.], [180., 0., -700., 0.],
                          [1., 0., 0., 0.], [0., 0., 0., 1.]],
                         dtype=np.float32)
    sample = Det3DDataSample(
        metainfo=dict(
            lidar2img=lidar2img,
            img_shape=(192, 640),
            ori_shape=(192, 640),
            pad_shape=(192, 640),
            scale_factor=(1., 1.),
            flip=False,
            pcd_horizontal_flip=False,
            pcd_vertical_flip=False,
            pcd_scale_factor=1.0,
            transformation_3d_flow=[],
            box_type_3d=LiDARInstance3DBoxes))
    sample.gt_instances_3d = InstanceData(
        bboxes_3d=LiDARInstance3DBoxes(
            torch.tensor([[20., 0., -1., 4., 1.8, 1.6, 0.3]])),
        labels_3d=torch.tensor([2]))
    data = model.data_preprocessor(
        dict(
            inputs=dict(points=[points], img=[torch.rand(3, 192, 640) * 255]),
            data_samples=[sample]),
        training=True)
    losses = model(**data, mode='loss')
    total = sum(
        sum(v) if isinstance(v, (list, tuple)) else v for v in losses.values())
    assert torch.isfinite(total)
    total.backward()
    for name in ('pts_middle_encoder.conv_input.0.weight',
                 'pts_voxel_encoder.fusion_layer.img_transform.0.weight',
                 'img_neck.lateral_convs.0.conv.weight'):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
