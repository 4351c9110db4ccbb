# TokenFusion translation on the synthetic set, small enough for a CPU: the
# generator / discriminator at 1/4 width (16 .. 256 channels) with one block
# per stage, the reference's losses and Adam recipe, 1000 iterations of
# batch 4, one evaluation at the end (MAE / MSE / RMSE / PSNR / SSIM of
# every stream and the ensemble).
_base_ = [
    '../_base_/models/tokenfusion_translation_mit.py',
    '../_base_/datasets/synthetic_translation_64x64.py',
    '../_base_/schedules/translation_adam_300e.py',
    '../_base_/translation_runtime.py'
]
tiny = dict(
    embed_dims=16, encoder_depths=(1, 1, 1, 1, 1), decoder_depths=(1, 1, 1, 1))
model = dict(
    generator=dict(**tiny),
    discriminator=dict(embed_dims=16, depths=tiny['encoder_depths']))
max_iters = 1000
train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=max_iters)
default_hooks = dict(
    checkpoint=dict(by_epoch=False, interval=max_iters),
    logger=dict(interval=100))
randomness = dict(seed=0)
