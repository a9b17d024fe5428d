import time

import pytest
import torch

from bitnetlib import book as bk
from bitnetlib import pipeline
from bitnetlib.book import cache as bcache
from bitnetlib.book import derived
from bitnetlib.training.config import ConfigError
from bitnetlib.training.data import REPO_ROOT

TINY = {"epochs": 1, "augment": False, "widths": [8], "train_subset": 500, "device": "cpu"}


def quiet_train(monkeypatch):
    """Count calls of bitnetlib.training.train.train made through run_cached."""
    calls = []
    real = bcache.train

    def counting(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)
    monkeypatch.setattr(bcache, "train", counting)
    return calls


def test_run_cached_reuses_finished_run(tmp_path, monkeypatch):
    monkeypatch.delenv("BITNET_RECOMPUTE", raising=False)
    calls = quiet_train(monkeypatch)
    model, metrics = bk.run_cached(TINY, cache_dir=tmp_path)
    again, metrics2 = bk.run_cached(dict(TINY), cache_dir=tmp_path)
    assert len(calls) == 1 and metrics2 == metrics
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k
    cfg = bk.resolve_config(TINY)
    assert calls[0] == tmp_path / bk.config_key(cfg)
    assert (calls[0] / "model.pt").exists()


def test_changed_config_trains_again_and_recompute_forces(tmp_path, monkeypatch):
    monkeypatch.delenv("BITNET_RECOMPUTE", raising=False)
    calls = quiet_train(monkeypatch)
    bk.run_cached(TINY, cache_dir=tmp_path)
    bk.run_cached({**TINY, "seed": 1}, cache_dir=tmp_path)
    assert len(calls) == 2 and calls[0] != calls[1]
    bk.run_cached(TINY, cache_dir=tmp_path, recompute=True)
    assert len(calls) == 3 and calls[2] == calls[0]
    monkeypatch.setenv("BITNET_RECOMPUTE", "1")
    bk.run_cached(TINY, cache_dir=tmp_path)
    assert len(calls) == 4
    monkeypatch.setenv("BITNET_RECOMPUTE", "maybe")
    with pytest.raises(ValueError, match="BITNET_RECOMPUTE"):
        bk.run_cached(TINY, cache_dir=tmp_path)


def test_config_key_depends_only_on_resolved_config():
    a = bk.resolve_config(["epochs=1", "widths=[8]"])
    b = bk.resolve_config({"widths": [8], "epochs": 1})
    c = bk.resolve_config({"widths": [8], "epochs": 2})
    assert bk.config_key(a) == bk.config_key(b) != bk.config_key(c)
    base = bk.resolve_config({"epochs": 1}, base="configs/fc12k_binary.yaml")
    assert base.quant == "Binary" and base.widths == [176, 160, 160] and base.epochs == 1


def test_bad_input_names_the_key():
    with pytest.raises(ConfigError, match="epoch"):
        bk.resolve_config({"epoch": 3})
    with pytest.raises(ConfigError, match="expected a TrainConfig"):
        bk.resolve_config(3)
    with pytest.raises(ValueError, match="profile"):
        bk.profile_settings("medium", {"epochs": 1}, {"epochs": 60})
    with pytest.raises(ValueError, match="epoch"):
        bk.profile_settings("smoke", {"epochs": 1}, {"epochs": 60}, epoch=3)


def test_sweep_and_sizes(tmp_path):
    runs = bk.sweep([{"quant": "Binary"}, {"quant": "8bit"}], common=TINY, cache_dir=tmp_path)
    assert [r.cfg.quant for r in runs] == ["Binary", "8bit"]
    assert bk.n_weights(runs[0].metrics) == 256 * 8 + 8 * 10
    assert bk.total_bits(runs[1].metrics) == 8 * bk.n_weights(runs[1].metrics)
    assert 0 <= runs[0].last["test_acc"] <= 100


def test_profile_settings_and_provenance():
    s = bk.profile_settings("full", {"epochs": 2, "seed": 0}, {"epochs": 60, "seed": 0},
                            epochs=None, seed=3)
    assert (s.profile, s.epochs, s.seed, s.changed) == ("full", 60, 3, ["seed"])
    assert "changed parameters** (seed)" in bk.profile_note(s)
    assert "not* comparable" in bk.profile_note(bk.profile_settings("smoke", {"epochs": 2, "train_subset": 9}, {}))
    p = bk.provenance("smoke", time.perf_counter() - 1.0, "cpu")
    assert {"commit", "date", "device", "profile", "wall time"} <= set(p)
    assert p["profile"] == "smoke" and p["device"].startswith("cpu")
    table = bk.markdown_table([{"a": 1.23456, "b": "x"}])
    assert table.splitlines()[2] == "| 1.235 | x |"


def test_every_chapter_has_parameters_kernel_and_provenance():
    """Static checks of notebooks/NN_*.py (nothing is executed)."""
    import jupytext
    chapters = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    assert chapters
    toc = (REPO_ROOT / "_toc.yml").read_text()
    for path in chapters:
        nb = jupytext.read(path)
        assert nb.metadata["kernelspec"]["name"] == "python3", path.name
        params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1 and 'profile = "smoke"' in params[0].source, path.name
        assert "provenance(" in nb.cells[-1].source, path.name
        assert "tqdm.auto" not in path.read_text(), path.name
        assert f"notebooks/{path.stem}" in toc, path.name


def test_mcu_cached_reuses_result_until_the_firmware_sources_change(tmp_path, monkeypatch):
    monkeypatch.delenv("BITNET_RECOMPUTE", raising=False)
    monkeypatch.setattr(derived, "run_dir_of", lambda cfg: tmp_path)
    calls = []

    def fake_run(run_dir, kernel, images, build_dir, log, timed=None):
        calls.append((run_dir, kernel, images))
        return {"run_dir": str(run_dir), "cycles_mean": 1000.0 + len(calls)}
    monkeypatch.setattr(pipeline, "mcu_run", fake_run)
    first = bk.mcu_cached(TINY, kernel="fast", images=3)
    assert "run_dir" not in first and str(tmp_path) not in (tmp_path / "mcu_fast_3.json").read_text()
    assert bk.mcu_cached(TINY, kernel="fast", images=3) == first and len(calls) == 1
    bk.mcu_cached(TINY, kernel="baseline", images=3)      # another kernel: another entry
    assert calls[-1] == (tmp_path, "baseline", 3) and len(calls) == 2
    monkeypatch.setattr(derived, "firmware_source_hash", lambda: "changed")
    assert bk.mcu_cached(TINY, kernel="fast", images=3)["cycles_mean"] == 1003.0
    assert not list(tmp_path.glob("*.tmp"))
