import pytest
from mmengine.registry import DefaultScope


@pytest.fixture(autouse=True)
def mmpretrain_scope():
    """Build in mmpretrain's registries whatever scope an earlier test of
    the same process left as the default (e.g. mmseg)."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield
