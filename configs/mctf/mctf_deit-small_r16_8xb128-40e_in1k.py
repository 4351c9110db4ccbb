# MCTF DeiT-S (paper: 80.1 % top-1 at 2.60 GFLOPs; DeiT-S 79.8 % at 4.61):
# fine-tuned from DeiT-S with the token-reduction consistency, 8 GPUs x 128
# images, DeiT's augmentation (RandAugment m9, random erasing 0.25, label
# smoothing 0.1; no mixup or cutmix, as the reference trains), evaluated
# with resize 256 / crop 224. Start from the official DeiT-S weights
# converted by tools/model_converters/deit2mmpretrain.py.
_base_ = [
    '../_base_/models/mctf_deit-small.py',
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    '../_base_/schedules/mctf_adamw_40e.py', '../_base_/mctf_runtime.py'
]
train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader
load_from = 'checkpoints/deit-small_in1k.pth'
