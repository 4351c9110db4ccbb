"""The 3D detection package stands on its own: importing it loads
nothing of the segmentation package."""
from ..utils import modules_loaded_by


def test_importing_det3d_loads_nothing_of_multimodal_seg():
    modules = modules_loaded_by('projects.multimodal_det3d')
    # the import did happen, with the shared pieces it needs
    for name in ('projects.multimodal_det3d',
                 'projects.multimodal_det3d.models.detectors.'
                 'tokenfusion_groupfree3d', 'projects.common.cpu_point_ops',
                 'projects.common.mmdet3d_compat'):
        assert name in modules, name
    seg = [
        name for name in modules if name == 'projects.multimodal_seg'
        or name.startswith('projects.multimodal_seg.')
    ]
    assert not seg, f'importing projects.multimodal_det3d loaded {seg}'
