# The plain ViT of the MCTF demo (`make demo TASK=mctf`): mmpretrain's
# VisionTransformer, 6 layers of width 64 (2 heads), 4 x 4 patches of a
# 32 x 32 image (64 patch tokens + the class token), trained from scratch
# on the synthetic shapes set. Nothing merges here: the MCTF and ToMe
# configs of the same name evaluate and fine-tune this model's checkpoint.
_base_ = [
    '../_base_/datasets/synthetic_shapes_32x32.py',
    '../_base_/schedules/synthetic_shapes_adamw_2k.py',
    '../_base_/mctf_runtime.py'
]
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch=dict(
            embed_dims=64,
            num_layers=6,
            num_heads=2,
            feedforward_channels=256),
        img_size=32,
        patch_size=4,
        drop_path_rate=0.,
        out_type='cls_token'),
    neck=None,
    head=dict(
        type='VisionTransformerClsHead',
        num_classes=6,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss')))
# one checkpoint at the end, logs by iteration, seeded
default_hooks = dict(
    logger=dict(interval=100),
    checkpoint=dict(by_epoch=False, interval={{_base_.max_iters}}))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
