import json

import pytest
import torch

from bitnetlib.cli import main
from bitnetlib.training.config import ConfigError, load_config, make_config
from bitnetlib.training.models import build_model
from bitnetlib.training.ptq import post_training_quantize
from bitnetlib.training.stats import model_stats
from bitnetlib.training.rundir import load_run
from bitnetlib.training.schedule import lr_at
from bitnetlib.training.train import distillation_loss, evaluate, train



def test_short_run_learns(mnist, mnist_subset, tmp_path):
    """4bitsym FC on 6,000 images for 3 epochs: far above chance on all 10,000 test images."""
    cfg = load_config(None, ["epochs=3", "augment=false", "widths=[32,32]", "lr=0.003"])
    model, metrics = train(cfg, tmp_path, data=mnist_subset(6000), progress=False,
                           log=lambda s: None)
    assert metrics[-1]["test_acc"] > 85.0
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    assert metrics[-1]["test_acc"] == pytest.approx(evaluate(model, mnist.test_x, mnist.test_y)[1])


def test_4p6_short_run_learns_and_the_engine_agrees(mnist, mnist_subset, tmp_path):
    """4p6 (15 weight levels, activations limited to -16..16) learns in 3 epochs, and
    the trained model's C engine equals its integer model on every logit."""
    import numpy as np
    from bitnetlib import pipeline
    from bitnetlib.deploy import engine, intmodel
    from bitnetlib.deploy.model import write_header
    cfg = load_config(None, ["quant=4p6", "epochs=3", "augment=false", "widths=[32,32]",
                             "lr=0.003"])
    model, metrics = train(cfg, tmp_path, data=mnist_subset(6000), progress=False,
                           log=lambda s: None)
    assert metrics[-1]["test_acc"] > 80.0
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    _, _, exp = pipeline.export_run(tmp_path, mnist)
    x = intmodel.input_codes(mnist.test_x[:2000])
    ref = intmodel.run(exp, x)
    pred, logits = engine.EngineModel(write_header(exp, tmp_path / "m.h"), exp.model_id).run(
        x.astype(np.int8))
    assert np.array_equal(logits, ref.logits)
    assert (ref.pred == mnist.test_y[:2000].numpy()).mean() > 0.75


def test_resume_gives_identical_weights(mnist, mnist_subset, tmp_path):
    cfg = load_config(None, ["epochs=3", "augment=true", "widths=[16]", "clip=octav",
                             "halve_lr_epoch=1"])
    data = mnist_subset(1000)
    full, _ = train(cfg, tmp_path / "a", data=data, progress=False, log=lambda s: None)
    train(cfg, tmp_path / "b", data=data, progress=False, log=lambda s: None, stop_after=1)
    assert not (tmp_path / "b" / "model.pt").exists()
    resumed, metrics = train(cfg, tmp_path / "b", data=data, progress=False, log=lambda s: None)
    assert len(metrics) == 3
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k


def test_resume_refuses_other_config(mnist, mnist_subset, tmp_path):
    data = mnist_subset(500)
    cfg = load_config(None, ["epochs=2", "augment=false", "widths=[8]"])
    train(cfg, tmp_path, data=data, progress=False, log=lambda s: None, stop_after=1)
    other = load_config(None, ["epochs=2", "augment=false", "widths=[9]"])
    with pytest.raises(RuntimeError, match="different config"):
        train(other, tmp_path, data=data, progress=False, log=lambda s: None)


def test_cli_train_writes_run_dir(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("widths: [16]\nepochs: 1\ntrain_subset: 600\naugment: false\n")
    out = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(out), "--no-progress", "--set", "seed=3"]) == 0
    assert {p.name for p in out.iterdir()} >= {"config.yaml", "metrics.json", "model.pt",
                                               "checkpoint.pt"}
    m = json.loads((out / "metrics.json").read_text())[0]
    assert {"train_loss", "train_acc", "test_loss", "test_acc", "seconds", "layers"} <= set(m)
    assert {"clip", "entropy", "histogram", "bits"} <= set(m["layers"][0])
    assert "Epoch [1/1]" in capsys.readouterr().out
    run_cfg, model = load_run(out)
    assert run_cfg.seed == 3 and run_cfg.train_subset == 600
    assert not list(out.glob("*.tmp"))


def test_cli_reports_config_error(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("widths: [16]\nepoch: 1\n")
    assert main(["train", str(cfg), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'epoch'" in err and "epochs" in err


def test_lr_schedules():
    cos = load_config(None, ["epochs=10", "lr=0.01"])
    assert lr_at(cos, 0) == pytest.approx(0.01) and lr_at(cos, 5) == pytest.approx(0.005)
    step = load_config(None, ["scheduler=step", "step_size=10", "lr=0.01"])
    assert lr_at(step, 9) == pytest.approx(0.01) and lr_at(step, 10) == pytest.approx(0.001)
    lin = load_config(None, ["scheduler=linear", "epochs=10", "lr=0.01"])
    assert [round(lr_at(lin, e), 6) for e in (0, 5, 9)] == [0.01, 0.005, 0.001]
    halve = load_config(None, ["scheduler=constant", "halve_lr_epoch=30", "lr=0.003"])
    assert lr_at(halve, 29) == pytest.approx(0.003) and lr_at(halve, 30) == pytest.approx(0.0015)


def test_cnn_reference_size_and_forward():
    cfg = load_config(None, ["model=cnn", "cnn_channels=64", "widths=[96, 64]",
                             "quant_per_layer=[2bitsym, 4bitsym, 4bitsym]"])
    model = build_model(cfg)
    for layer in [m for m in model.modules() if hasattr(m, "update_clip")]:
        layer.update_clip("prop", 0.25)
    bits = sum(m.quantizer.bits * m.weight.numel() for m in model.modules()
               if hasattr(m, "quantizer"))
    assert bits == 90112                       # the write-up's 11.0 KB CNN
    assert model(torch.randn(5, 1, 16, 16)).shape == (5, 10)


def test_twelve_kb_table_sizes():
    """The write-up's 12 KB table: total kbits per type."""
    table = {"Binary": ([176, 160, 160], 100416), "Ternary": ([128, 128, 112], 103372.8),
             "2bitsym": ([112, 96, 96], 99200), "4bitsym": ([64, 64, 64], 100864),
             "8bit": ([40, 32, 32], 102912)}
    for q, (widths, bits) in table.items():
        model = build_model(load_config(None, [f"quant={q}", f"widths={widths}"]))
        assert sum(s["bits"] for s in model_stats(model)) == pytest.approx(bits)


def test_ptq_8bit_keeps_float_accuracy(mnist, mnist_subset, tmp_path):
    cfg = load_config(None, ["quant=None", "epochs=2", "augment=false", "widths=[32,32]",
                             "lr=0.003"])
    model, metrics = train(cfg, tmp_path, data=mnist_subset(6000), progress=False,
                           log=lambda s: None)
    float_acc = metrics[-1]["test_acc"]
    acc8 = evaluate(post_training_quantize(model, cfg, "8bit"), mnist.test_x, mnist.test_y)[1]
    acc1 = evaluate(post_training_quantize(model, cfg, "Binary"), mnist.test_x, mnist.test_y)[1]
    assert abs(acc8 - float_acc) < 1.0
    assert acc1 < acc8


def test_clip_update_per_step_follows_weights(mnist, mnist_subset, tmp_path):
    cfg = load_config(None, ["epochs=1", "augment=false", "widths=[16]", "clip_update=step"])
    model, _ = train(cfg, tmp_path, data=mnist_subset(640), progress=False, log=lambda s: None)
    first = [m for m in model.modules() if hasattr(m, "clip")][0]
    # the buffer holds the clip of the last training step: mean|w| / quantscale of
    # weights one optimizer step old, so close to, not equal to, the final weights'
    assert float(first.clip) == pytest.approx(float(first.weight.detach().abs().mean() / 0.25),
                                             rel=0.02)
    with pytest.raises(Exception, match="clip_update"):
        load_config(None, ["clip=octav", "clip_update=step"])


def test_distillation_from_teacher_run(mnist, mnist_subset, tmp_path):
    """A student distilled from a trained teacher run trains, and the loss mixes in
    the teacher: with alpha = 1 it is the KL term alone."""
    data = mnist_subset(6000)
    tcfg = load_config(None, ["epochs=2", "augment=false", "widths=[64]", "quant=None",
                              "lr=0.003"])
    train(tcfg, tmp_path / "teacher", data=data, progress=False, log=lambda s: None)
    scfg = load_config(None, ["epochs=2", "augment=false", "widths=[32]", "distill_alpha=0.7",
                              "lr=0.003", f"teacher={tmp_path / 'teacher'}"])
    _, metrics = train(scfg, tmp_path / "student", data=data, progress=False, log=lambda s: None)
    assert metrics[-1]["test_acc"] > 80

    s, t = torch.randn(8, 10), torch.randn(8, 10)
    y = torch.randint(0, 10, (8,))
    assert float(distillation_loss(s, y, t.clone(), 1.0, 2.0)) >= 0
    assert float(distillation_loss(t, y, t.clone(), 1.0, 2.0)) == pytest.approx(0, abs=1e-6)
    assert float(distillation_loss(s, y, None, 0.5, 2.0)) == pytest.approx(
        float(torch.nn.functional.cross_entropy(s, y)))


def test_distillation_needs_teacher():
    with pytest.raises(Exception, match="teacher"):
        load_config(None, ["distill_alpha=0.5"])


def test_stats_of_an_untrained_model_give_sizes_without_codes():
    # clip 0 (never chosen) and an exact zero weight gave 0/0 = NaN codes before
    model = build_model(make_config({"quant": "Ternary", "widths": [8]}))
    layer = next(m for m in model.modules() if hasattr(m, "clip"))
    with torch.no_grad():
        layer.weight[0, 0] = 0.0
    stats = model_stats(model)
    assert "histogram" not in stats[0] and stats[0]["n_weights"] == layer.weight.numel()
    layer.update_clip("prop", 0.25)
    hist = model_stats(model)[0]["histogram"]
    assert sum(hist) == layer.weight.numel() and len(hist) == 3


def test_label_smoothing_targets_mix_one_hot_and_uniform():
    """CE with smoothing e equals CE against (1 - e) one-hot + e / 10 on every class;
    its minimum is at a finite logit gap, not at infinity."""
    logits, y = torch.randn(6, 10), torch.randint(0, 10, (6,))
    target = torch.full((6, 10), 0.1 / 10).scatter_(1, y[:, None], 0.9 + 0.1 / 10)
    manual = -(target * torch.log_softmax(logits, 1)).sum(1).mean()
    assert float(distillation_loss(logits, y, None, 0.0, 1.0, 0.1)) == pytest.approx(float(manual))
    sharp = torch.zeros(1, 10).index_fill_(1, torch.tensor([3]), 50.0)
    mild = torch.zeros(1, 10).index_fill_(1, torch.tensor([3]), 6.0)
    y3 = torch.tensor([3])
    assert distillation_loss(mild, y3, None, 0, 1, 0.1) < distillation_loss(sharp, y3, None, 0, 1, 0.1)
    with pytest.raises(ConfigError, match="label_smoothing"):
        load_config(None, ["label_smoothing=1.5"])


def test_dropout_trains_and_exports_as_the_same_network(mnist, mnist_subset, tmp_path):
    """Dropout sits before the hidden layers while training (a short run still learns)
    and is left out of the exported network, an identity at inference: the exported
    layers are those of the same network without dropout."""
    from bitnetlib.training.export import export_model
    cfg = load_config(None, ["epochs=2", "augment=false", "widths=[32,32]", "lr=0.003",
                             "dropout=0.2"])
    model, metrics = train(cfg, tmp_path, data=mnist_subset(3000), progress=False,
                           log=lambda s: None)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Flatten", "BitLinear", "Dropout", "BitLinear", "Dropout", "BitLinear"]
    assert metrics[-1]["test_acc"] > 70.0
    model.eval()
    x = mnist.test_x[:64]
    assert torch.equal(model(x), model(x))                     # no dropout at inference
    plain = export_model(build_model(load_config(None, ["widths=[32,32]"])))
    assert [(s.kind, s.n_in, s.n_out) for s in export_model(model).layers] == \
        [(s.kind, s.n_in, s.n_out) for s in plain.layers]


@pytest.mark.parametrize("model,conv_weights", [("cnn_addendum", 16 * 9 + 16 * 16 * 9),
                                                ("cnn_addendum_dw", 16 * 9 + 16 * 9)])
def test_addendum_cnn_shapes_and_export_refusal(model, conv_weights):
    """The write-up's first CNN: two float 3x3 convs (padding 1) and max-pooling before
    the 4-bit head (16 -> 8 -> 4: 16 x 4 x 4 features); it is a training study, so
    export names the layer the engine lacks instead of writing a header."""
    from bitnetlib.deploy.packing import ExportError
    from bitnetlib.training.export import export_model
    net = build_model(load_config(None, [f"model={model}", "cnn_channels=16",
                                         "widths=[64,64,64]"]))
    convs = [m for m in net if isinstance(m, torch.nn.Conv2d)]
    assert sum(c.weight.numel() for c in convs) == conv_weights
    assert net(torch.rand(3, 1, 16, 16)).shape == (3, 10)
    assert next(m for m in net if hasattr(m, "in_features")).in_features == 16 * 4 * 4
    with pytest.raises(ExportError, match="Conv2d"):
        export_model(net)
