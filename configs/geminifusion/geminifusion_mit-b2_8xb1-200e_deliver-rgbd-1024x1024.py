# GeminiFusion MiT-B2 on DeLiVER RGB-D (depth = the HHA image of `hha/`):
# the RGB-D-E-L recipe with two modalities, hence no hub, and drop path 0.4
# (the reference's RGB-D / RGB-E / RGB-L setting). Reference result: 66.4
# mIoU.
_base_ = ['./geminifusion_mit-b2_8xb1-200e_deliver-rgbdel-1024x1024.py']
modalities = ('rgb', 'depth')
model = dict(
    data_preprocessor=dict(modalities=[
        'rgb',
        dict(
            name='depth',
            in_channels=3,
            mean=[0.],
            std=[255.],
            bgr_to_rgb=True,
            repeat=1)
    ]),
    backbone=dict(
        num_modalities=len(modalities), hub=None, drop_path_rate=0.4))
train_dataloader = dict(dataset=dict(modalities=modalities))
val_dataloader = dict(dataset=dict(modalities=modalities))
test_dataloader = val_dataloader
