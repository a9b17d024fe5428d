import pytest
import torch

from bitnetlib.data import load_mnist


@pytest.fixture(scope="session")
def mnist():
    """The real MNIST tensors (from ../shared/data or $BITNET_DATA; never downloaded)."""
    torch.set_num_threads(2)
    return load_mnist()
