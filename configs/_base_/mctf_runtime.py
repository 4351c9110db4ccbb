# mmpretrain's runtime (default_scope='mmpretrain', hooks, logging) with
# the MCTF package registered.
_base_ = ['mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['projects.mctf'], allow_failed_imports=False)
