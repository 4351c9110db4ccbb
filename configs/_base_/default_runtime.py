# mmseg's runtime (default_scope='mmseg', hooks, logging, TTA model) plus
# our modules and the RGB | modalities | prediction | GT visualizer.
_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(
    imports=['projects.multimodal_seg'], allow_failed_imports=False)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='MultiModalSegLocalVisualizer',
    vis_backends=vis_backends,
    name='visualizer')
