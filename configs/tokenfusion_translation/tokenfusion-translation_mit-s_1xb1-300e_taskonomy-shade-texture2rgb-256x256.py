# TokenFusion-S, Taskonomy Shade + Texture -> RGB (TokenFusion Table 1):
# the reference's default task (its `-i 2 7 0`).
# The reference's generator / discriminator (20 encoder blocks; 131.1 M /
# 85.3 M parameters for two sources), token exchange (θ = 0.02) in the
# last block of each encoder stage, Adam 2e-4 (0.5, 0.999), batch 1,
# 300 epochs.
_base_ = [
    '../_base_/models/tokenfusion_translation_mit.py',
    '../_base_/datasets/taskonomy_translation_256x256.py',
    '../_base_/schedules/translation_adam_300e.py',
    '../_base_/translation_runtime.py'
]
sources = ('reshading', 'edge_texture')
target = 'rgb'
model = dict(stream_names=sources)
train_dataloader = dict(dataset=dict(sources=sources, target=target))
val_dataloader = dict(dataset=dict(sources=sources, target=target))
test_dataloader = val_dataloader
