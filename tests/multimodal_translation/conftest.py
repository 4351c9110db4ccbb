import pytest


@pytest.fixture(autouse=True)
def mmseg_scope():
    """Every test here builds from mmseg's registries with the plugin's
    modules registered."""
    from mmengine.registry import DefaultScope

    import projects.multimodal_translation  # noqa: F401  (registers)
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield
