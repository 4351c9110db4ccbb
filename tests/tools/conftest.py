import pytest
import torch


@pytest.fixture(scope='module')
def one_thread():
    """Tiny models: one intra-op thread is fastest and immune to other
    processes on a busy machine (``pytestmark =
    pytest.mark.usefixtures('one_thread')`` in a module)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
