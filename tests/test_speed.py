"""The speed-ups of the training loop (bitnetlib.training.speed) change no result:
the same data, the same weights, the same metrics as the plain loop."""
import torch

from bitnetlib.training.config import load_config
from bitnetlib.training.layers import BitConv2d
from bitnetlib.training.models import build_model
from bitnetlib.training.schedule import epoch_data, epoch_generator, update_clips
from bitnetlib.training.speed import EpochPrefetch
from bitnetlib.training.train import make_optimizer, train_epoch


def plain_epoch(model, opt, x, y, order, batch_size):
    """The loop as it was written first: one float32 running sum, one count."""
    loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
    for i in range(0, order.shape[0], batch_size):
        idx = order[i:i + batch_size]
        xb, yb = x.index_select(0, idx), y.index_select(0, idx)
        logits = model(xb)
        loss = torch.nn.functional.cross_entropy(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach() * xb.shape[0]
        correct += (logits.detach().argmax(1) == yb).sum()
    return float(loss_sum) / order.shape[0], 100.0 * int(correct) / order.shape[0]


def two_models(overrides):
    cfg = load_config(None, overrides)
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_model(cfg)
        update_clips(model, cfg, 0)
        models.append(model)
    return cfg, models


def test_train_epoch_equals_the_plain_loop(mnist_subset):
    """Same weights bit for bit and the same loss and accuracy (a last batch of 40)."""
    data = mnist_subset(1000)
    cfg, (a, b) = two_models(["widths=[32, 16]", "augment=true", "batch_size=64"])
    x, y, order = epoch_data(cfg, data, epoch_generator(cfg, 0, "cpu"))
    ra = train_epoch(a, make_optimizer(a, cfg), x, y, order, 64, progress=False)
    rb = plain_epoch(b, make_optimizer(b, cfg), x, y, order, 64)
    assert ra == rb
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


def test_prefetched_epochs_equal_epochs_drawn_on_demand(mnist_subset):
    data = mnist_subset(500)
    cfg = load_config(None, ["augment=true", "aug_elastic=1.0"])
    prefetch = EpochPrefetch(cfg, data, "cpu", last=4)
    try:
        for epoch in (0, 1, 3):                   # epoch 2 prefetched and never asked for
            got = prefetch.get(epoch)
            want = epoch_data(cfg, data, epoch_generator(cfg, epoch, "cpu"))
            assert all(torch.equal(g, w) for g, w in zip(got, want)), epoch
    finally:
        prefetch.close()


def test_eager_cnn_in_nhwc_equals_nchw(mnist_subset):
    """The eager CNN's NHWC maps give the weights the NCHW maps give, bit for bit."""
    data = mnist_subset(640)
    cfg, (a, b) = two_models(["model=cnn", "cnn_channels=8", "widths=[16]", "compile=false"])
    for m in b.modules():
        if isinstance(m, BitConv2d):
            m.channels_last = False
    order = torch.arange(640)
    ra = train_epoch(a, make_optimizer(a, cfg), data.train_x, data.train_y, order, 128,
                     progress=False)
    rb = train_epoch(b, make_optimizer(b, cfg), data.train_x, data.train_y, order, 128,
                     progress=False)
    assert ra == rb
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


def test_a_compiled_cnn_step_runs_its_convs_eagerly_in_nhwc():
    """torch.compile of the training step leaves the conv front to eager PyTorch (NHWC
    maps, faster on a CPU than inductor's code) and compiles the head."""
    from bitnetlib.training.layers import BitLinear
    from bitnetlib.training.train import make_step_fn
    cfg = load_config(None, ["model=cnn", "cnn_channels=4", "widths=[8]", "compile=true"])
    torch.manual_seed(0)
    model = build_model(cfg)
    seen = []
    for m in model.modules():
        if isinstance(m, (BitConv2d, BitLinear)):
            m.register_forward_hook(lambda mod, inp, out: seen.append(
                (type(mod).__name__, torch.compiler.is_compiling(),
                 out.dim() == 4 and out.is_contiguous(memory_format=torch.channels_last))))
    loss, _ = make_step_fn(cfg)(model, torch.rand(4, 1, 16, 16), torch.arange(4), None)
    loss.backward()
    convs = [s for s in seen if s[0] == "BitConv2d"]
    assert len(convs) == 3 and all(not compiling and nhwc for _, compiling, nhwc in convs)
    assert any(compiling for name, compiling, _ in seen if name == "BitLinear")
