# TokenFusion-S, Taskonomy RGB + Shade -> Normal (TokenFusion Table 1): the
# shade + texture task's networks and recipe; a non-RGB target is scored by
# MAE / MSE (Table 1 prints both x10), not FID / KID.
_base_ = [
    './tokenfusion-translation_mit-s_1xb1-300e_taskonomy-'
    'shade-texture2rgb-256x256.py'
]
sources = ('rgb', 'reshading')
target = 'normal'
model = dict(stream_names=sources)
train_dataloader = dict(dataset=dict(sources=sources, target=target))
val_dataloader = dict(dataset=dict(sources=sources, target=target))
test_dataloader = val_dataloader
val_evaluator = [dict(type='TranslationMetric')]
test_evaluator = val_evaluator
