# Early-concat RGB-D baseline (TokenFusion paper's "Concat" row): RGB and
# tiled depth stacked into a 6-channel input of one MiT-B2. The ImageNet
# weights cover 3 input channels: the 6-channel patch embedding keeps its
# random initialisation (mmengine reports the shape mismatch).
_base_ = [
    '../_base_/models/segformer_mit-b0_multimodal.py',
    '../_base_/datasets/nyu_rgbd_480x640.py', '../_base_/default_runtime.py',
    '../_base_/schedules/segformer_adamw_40k.py'
]
modalities = ('rgb', 'depth')
checkpoint = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segformer/mit_b2_20220624-66e8bf70.pth'  # noqa
model = dict(
    data_preprocessor=dict(modalities=modalities, size=(480, 640)),
    backbone=dict(
        in_channels=6,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint),
        embed_dims=64,
        num_layers=[3, 4, 6, 3]),
    decode_head=dict(in_channels=[64, 128, 320, 512], num_classes=40))
train_dataloader = dict(dataset=dict(modalities=modalities))
val_dataloader = dict(dataset=dict(modalities=modalities))
test_dataloader = val_dataloader
