"""The fusion math runs without OpenMMLab: importing it loads none of
mmengine / mmcv / mmseg / mmdet / mmdet3d and no other package of the
repository (the static side is an import contract of ``make lint``)."""
import subprocess
import sys

from ..utils import REPO_ROOT

PROBE = """
import sys
import projects.fusion_math
loaded = sorted(m for m in sys.modules
                if m.split('.')[0] in ('mmengine', 'mmcv', 'mmseg', 'mmdet',
                                       'mmdet3d')
                or (m.startswith('projects.')
                    and not m.startswith('projects.fusion_math')))
print(repr(loaded))
"""


def test_importing_the_fusion_math_loads_no_openmmlab_package():
    out = subprocess.run([sys.executable, '-c', PROBE],
                         cwd=REPO_ROOT,
                         capture_output=True,
                         text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '[]'
