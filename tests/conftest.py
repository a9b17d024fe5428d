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


# a training run that takes a second: for the run cache, the store and Dask
TINY_RUN = {"epochs": 1, "augment": False, "widths": [8], "train_subset": 300, "device": "cpu",
            "threads": 1}


@pytest.fixture()
def run_dirs(tmp_path, monkeypatch):
    """An empty run cache (tmp/cache) and results store (tmp/results/runs), with
    training on and neither recomputation nor publishing asked for; returns tmp_path."""
    monkeypatch.setenv("BITNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("BITNET_STORE", str(tmp_path / "results" / "runs"))
    for name in ("BITNET_RECOMPUTE", "BITNET_TRAIN", "BITNET_PUBLISH", "BITNET_WANTED"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path
