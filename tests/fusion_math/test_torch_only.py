"""The fusion math runs without OpenMMLab: importing it loads none of
mmengine / mmcv / mmseg / mmdet / mmdet3d and no other package of the
repository (the static side is an import contract of ``make lint``)."""
from ..utils import modules_loaded_by

OPENMMLAB = ('mmengine', 'mmcv', 'mmseg', 'mmdet', 'mmdet3d')


def test_importing_the_fusion_math_loads_no_openmmlab_package():
    modules = modules_loaded_by('projects.fusion_math')
    assert 'projects.fusion_math.token_exchange' in modules
    assert 'torch' in modules
    others = [
        m for m in modules if m.split('.')[0] in OPENMMLAB or (m.startswith(
            'projects.') and not m.startswith('projects.fusion_math'))
    ]
    assert not others, others
