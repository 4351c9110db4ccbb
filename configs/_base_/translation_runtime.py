# mmseg's runtime (default_scope='mmseg', hooks, logging) with the
# translation package: its datasets, networks, GAN model and evaluators.
_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(
    imports=['projects.multimodal_translation'], allow_failed_imports=False)
