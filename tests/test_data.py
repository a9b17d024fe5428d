import shutil

import pytest
import torch

from bitnetlib.training import data as D


@pytest.fixture()
def raw_copy(tmp_path):
    """A writable copy of the MNIST raw folder: root/MNIST/raw."""
    src = D.resolve_data_root() / "MNIST" / "raw"
    dst = tmp_path / "MNIST" / "raw"
    shutil.copytree(src, dst)
    for f in dst.iterdir():
        f.chmod(0o644)
    return tmp_path


def test_shapes_and_normalisation(mnist):
    assert mnist.train_x.shape == (60000, 1, 16, 16) and mnist.test_x.shape == (10000, 1, 16, 16)
    assert mnist.train_y.dtype == torch.int64 and set(mnist.train_y.unique().tolist()) == set(range(10))
    assert abs(float(mnist.train_x.mean())) < 0.05       # normalised with MNIST's mean/std
    assert float(mnist.train_x.min()) == pytest.approx(-D.MEAN / D.STD, abs=1e-4)


def test_corrupt_file_is_named(raw_copy):
    f = raw_copy / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    data = bytearray(f.read_bytes())
    data[100] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(D.DataError, match="t10k-labels-idx1-ubyte.*SHA256"):
        D.load_mnist(raw_copy)


def test_missing_file_is_named(raw_copy):
    (raw_copy / "MNIST" / "raw" / "train-images-idx3-ubyte").unlink()
    with pytest.raises(D.DataError, match="train-images-idx3-ubyte.*BITNET_DATA"):
        D.load_mnist(raw_copy)


def test_truncated_file_without_checksums(raw_copy):
    raw = raw_copy / "MNIST" / "raw"
    (raw / "SHA256SUMS").unlink()
    f = raw / "t10k-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:5000])
    with pytest.raises(D.DataError, match="truncated"):
        D.load_mnist(raw_copy)


def test_env_var_is_used(raw_copy, monkeypatch):
    monkeypatch.setenv("BITNET_DATA", str(raw_copy))
    assert D.resolve_data_root() == raw_copy
    assert D.resolve_data_root("/explicit") == D.Path("/explicit")


def test_identity_warp_reproduces_clean_images(mnist):
    """With all random ranges at zero, augmentation returns the clean 16x16 images
    (up to the prefilter's stand-in for antialiasing)."""
    p = D.AugmentParams(0, 0, 0, 1.0, 1.0)
    out = D.augment(mnist.train28[:2000], p, torch.Generator().manual_seed(0))
    diff = (out - mnist.train_x[:2000]) * D.STD          # back in [0, 1] pixel units
    assert float(diff.abs().mean()) < 0.006


def test_augmentation_is_random_per_sample_and_reproducible(mnist):
    p = D.AugmentParams()
    a = D.augment(mnist.train28[:512], p, torch.Generator().manual_seed(1))
    b = D.augment(mnist.train28[:512], p, torch.Generator().manual_seed(1))
    c = D.augment(mnist.train28[:512], p, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    moved = ((a - mnist.train_x[:512]).abs().flatten(1).mean(1) > 0.02).float().mean()
    assert moved > 0.9                                   # nearly every image is warped


def test_translation_moves_centre_of_mass():
    img = torch.zeros(1, 1, 28, 28)
    img[..., 12:16, 12:16] = 1.0
    theta = torch.tensor([[[1.0, 0, -4 * 2 / 28], [0, 1.0, 0]]])   # shift right by 4 px
    out = torch.nn.functional.grid_sample(img, D.sampling_grid(theta, 28), align_corners=False)
    cols = out[0, 0].sum(0)
    com = float((cols * torch.arange(28)).sum() / cols.sum())
    assert com == pytest.approx(13.5 + 4, abs=0.1)


def test_elastic_field_is_smooth_sized_and_off_by_default(mnist):
    """The elastic displacement has the asked std at its control points, varies slowly
    between neighbouring pixels, and leaves the affine-only random stream untouched."""
    g = torch.Generator().manual_seed(0)
    d = D.random_displacement(4000, D.AugmentParams(elastic=2.0, elastic_grid=4), g) * 14
    assert d.shape == (4000, 16, 16, 2)
    assert float(d[:, 0, 0].std()) == pytest.approx(2.0, rel=0.05)   # pixels at a control point
    step = (d[:, :, 1:] - d[:, :, :-1]).abs().mean()                 # neighbour difference
    assert float(step) < 0.5 * float(d.abs().mean())           # white noise: ~1.4
    p0, p1 = D.AugmentParams(), D.AugmentParams(elastic=1.5)
    plain = D.augment(mnist.train28[:256], p0, torch.Generator().manual_seed(3))
    again = D.augment(mnist.train28[:256], p0, torch.Generator().manual_seed(3))
    bent = D.augment(mnist.train28[:256], p1, torch.Generator().manual_seed(3))
    assert torch.equal(plain, again) and not torch.equal(plain, bent)
    # same affine draws (they come first): the elastic images stay close to the affine ones
    assert float((bent - plain).abs().mean()) < float((plain - mnist.train_x[:256]).abs().mean())
