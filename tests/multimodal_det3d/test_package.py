"""The 3D detection package stands on its own: importing it (in a fresh
interpreter, so that no other test has imported anything yet) loads
nothing of the segmentation package."""
import json
import subprocess
import sys

from ..utils import REPO_ROOT

LIST_MODULES = ('import json, sys\n'
                'import projects.multimodal_det3d\n'
                'print(json.dumps(sorted(sys.modules)))\n')


def test_importing_det3d_loads_nothing_of_multimodal_seg():
    proc = subprocess.run([sys.executable, '-c', LIST_MODULES],
                          cwd=REPO_ROOT,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    modules = json.loads(proc.stdout.strip().splitlines()[-1])
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
