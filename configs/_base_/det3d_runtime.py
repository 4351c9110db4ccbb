# mmdet3d's runtime (default_scope='mmdet3d', hooks, logging) plus our 3D
# modules; importing them also makes mmcv's CUDA-only point ops run on CPU.
_base_ = ['mmdet3d::_base_/default_runtime.py']
custom_imports = dict(
    imports=['projects.multimodal_det3d'], allow_failed_imports=False)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=25, max_keep_ckpts=3))
