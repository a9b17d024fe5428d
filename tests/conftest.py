import pytest
import torch

from bitnetlib.training.data import MnistTensors, load_mnist


@pytest.fixture(scope="session")
def mnist():
    """The real MNIST tensors (from ../shared/data or $BITNET_DATA; never downloaded)."""
    torch.set_num_threads(2)
    return load_mnist()


@pytest.fixture(scope="session")
def mnist_subset(mnist):
    """``mnist_subset(n, n_test=None)``: MNIST with the first ``n`` training images and
    all test images (or the first ``n_test``)."""
    def make(n, n_test=None):
        t = slice(None) if n_test is None else slice(n_test)
        return MnistTensors(mnist.train28[:n], mnist.train_x[:n], mnist.train_y[:n],
                            mnist.test_x[t], mnist.test_y[t])
    return make
