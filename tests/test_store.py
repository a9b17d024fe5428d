"""The results store (bitnetlib/book/store.py) and how the book's runs use it."""
import json
import lzma

import pytest
import torch

from bitnetlib import book as bk
from bitnetlib.book import cache as bcache
from bitnetlib.book import store
from bitnetlib.training.rundir import json_text, load_run, resolve_run

from conftest import TINY_RUN as TINY


@pytest.fixture()
def dirs(run_dirs):
    return run_dirs


def test_publish_copies_the_run_with_provenance_and_no_checkpoint(dirs, monkeypatch):
    monkeypatch.setenv("BITNET_PUBLISH", "1")
    model, metrics = bk.run_cached(TINY)
    entry = bk.run_dir_of(TINY)
    assert entry.parent == dirs / "results" / "runs"
    assert sorted(p.name for p in entry.iterdir()) == ["config.yaml", "metrics.json.xz",
                                                       "model.pt.xz", "run.json"]
    prov = json.loads((entry / "run.json").read_text())
    assert prov["epochs"] == 1 and prov["wall_seconds"] >= 0 and prov["commit"] and prov["machine"]
    assert store.stored_metrics(entry) == store.compact_metrics(metrics)
    assert json.loads(lzma.decompress((entry / "metrics.json.xz").read_bytes())) == \
        store.compact_metrics(metrics)                    # xz -dk gives the JSON
    cached = dirs / "cache" / entry.name / "model.pt"     # compressed without loss
    assert lzma.decompress((entry / "model.pt.xz").read_bytes()) == cached.read_bytes()
    assert (entry / "model.pt.xz").stat().st_size < cached.stat().st_size
    _, stored_model = load_run(entry)
    assert all(torch.equal(a, b) for a, b in zip(stored_model.state_dict().values(),
                                                 model.state_dict().values()))
    assert not list(entry.parent.glob(".*"))              # no temporary directory left


def test_the_store_is_read_first_and_nothing_is_trained(dirs, monkeypatch):
    monkeypatch.setenv("BITNET_PUBLISH", "1")
    bk.run_cached(TINY)
    import shutil
    shutil.rmtree(dirs / "cache")                         # only the store has the run now
    monkeypatch.setenv("BITNET_TRAIN", "0")
    monkeypatch.setattr(bcache, "train", lambda *a, **k: pytest.fail("trained"))
    _, metrics = bk.run_cached(dict(TINY))
    assert len(metrics) == 1


def test_missing_runs_are_named_with_the_command(dirs, monkeypatch):
    monkeypatch.setenv("BITNET_TRAIN", "0")
    grid = [{"seed": s} for s in (1, 2)]
    with pytest.raises(bk.MissingRuns) as e:
        bk.sweep(grid, common=TINY)
    msg = str(e.value)
    keys = [bk.config_key(bk.resolve_config({**TINY, **g})) for g in grid]
    assert e.value.keys == keys and all(k in msg for k in keys)
    assert "make results" in msg and "seed 2" in msg and "\n" not in msg


def test_run_references_resolve_in_store_then_cache(dirs, monkeypatch):
    bk.run_cached(TINY)
    ref = bk.run_ref(TINY)
    assert ref == "run:" + bk.config_key(bk.resolve_config(TINY))
    assert resolve_run(ref) == dirs / "cache" / ref[4:]
    bcache.publish(bk.resolve_config(TINY), resolve_run(ref))
    assert resolve_run(ref) == dirs / "results" / "runs" / ref[4:]
    cfg, _ = load_run(ref)
    assert cfg.widths == [8]
    with pytest.raises(FileNotFoundError, match="run:0123"):
        resolve_run("run:0123")


def test_weight_averaged_runs_keep_their_last_iterate(dirs, monkeypatch):
    monkeypatch.setenv("BITNET_PUBLISH", "1")
    cfg = {**TINY, "epochs": 2, "swa_start_epoch": 0}
    bk.run_cached(cfg)
    assert (bk.run_dir_of(cfg) / store.stored_name(store.LAST_ITERATE)).exists()
    last = bk.checkpoint_model(cfg)
    _, avg = load_run(bk.run_dir_of(cfg))
    assert any((a != b).any() for a, b in zip(last.state_dict().values(),
                                               avg.state_dict().values()))


def test_require_names_every_missing_run_only_when_training_is_off(dirs, monkeypatch):
    cfgs = [{**TINY, "seed": s} for s in (3, 4)]
    bk.require(cfgs)                                      # training on: nothing to say
    monkeypatch.setenv("BITNET_TRAIN", "0")
    with pytest.raises(bk.MissingRuns) as e:
        bk.require(cfgs)
    assert len(e.value.keys) == 2


def test_results_json_lists_every_stored_run_with_its_checks(dirs, monkeypatch):
    from bitnetlib.book import summary
    monkeypatch.setenv("BITNET_PUBLISH", "1")
    _, metrics = bk.run_cached(TINY)
    v = bk.verify_cached(TINY)
    rows = summary.run_rows()
    assert [r["key"] for r in rows] == [bcache.config_key(bcache.resolve_config(TINY))]
    row = rows[0]
    assert row["test_acc"] == metrics[-1]["test_acc"] and row["epochs"] == 1
    assert row["acc_c"] == v["acc_c"] and row["mismatch_c_int"] == 0
    assert row["cycles_fast"] is None and row["fits_v003"] is None   # never emulated


def test_seed_means_count_each_seed_once(dirs, monkeypatch):
    from bitnetlib.book import summary
    monkeypatch.setenv("BITNET_PUBLISH", "1")
    runs = [{**TINY, "seed": 1, "threads": 1}, {**TINY, "seed": 1, "threads": 2},
            {**TINY, "seed": 2, "threads": 1}, {**TINY, "seed": 3, "threads": 1}]
    for c in runs:
        bk.run_cached(c)
    accs = [bk.verify_cached(c)["acc_c"] for c in runs[:3]]   # seed 3: trained, never checked
    by_seed = summary.seed_accuracies(bcache.resolve_config(runs[0]))
    assert sorted(by_seed) == [1, 2] and by_seed[2] == accs[2] and by_seed[1] in accs[:2]


def test_chapters_flag_runs_made_by_other_training_code():
    import subprocess
    from bitnetlib.book.provenance import runs_note, training_source_id
    git = lambda *a: subprocess.run(["git", *a], cwd=store.REPO_ROOT, capture_output=True,
                                    text=True).stdout.strip()
    if git("rev-parse", "--is-shallow-repository") != "false":
        pytest.skip("needs the git history")
    first = git("rev-list", "--max-parents=0", "HEAD").split()[0][:7]   # no bitnetlib/training yet
    run = dict(date="2026-01-01 00:00 UTC", machine="cpu (test)")
    here = git("rev-parse", "--short", "HEAD")
    same = runs_note({"a": {**run, "commit": here}})
    assert "Runs read: 1" in same and ("Note" in same) == (training_source_id(here) != training_source_id())
    old = runs_note({"a": {**run, "commit": here}, "b": {**run, "commit": first}})
    assert "Runs read: 2" in old and "**Note:**" in old
    assert first in old.split("**Note:**")[1].split("were computed")[0]   # named as stale


def test_old_entries_are_compacted_without_loss(dirs, monkeypatch):
    bk.run_cached(TINY)
    run_dir = resolve_run(bk.run_ref(TINY))
    old = dirs / "old"                                   # an entry in the first form
    old.mkdir()
    for name in ("config.yaml", "metrics.json", "model.pt"):
        (old / name).write_bytes((run_dir / name).read_bytes())
    assert store.compact_entry(old) and not store.compact_entry(old)
    assert sorted(p.name for p in old.iterdir()) == ["config.yaml", "metrics.json.xz",
                                                     "model.pt.xz"]
    assert lzma.decompress((old / "model.pt.xz").read_bytes()) == (run_dir / "model.pt").read_bytes()
    assert store.stored_metrics(old) == store.compact_metrics(
        json.loads((run_dir / "metrics.json").read_text()))


def test_the_committed_store_is_compact():
    """Every committed entry holds its weights and metrics in the compact form only
    (xz-compressed, the metrics folded), and no build products."""
    root = store.store_root()
    plain = sorted(p.parent.name for name in store.PACKED for p in root.glob(f"*/{name}"))
    assert not plain, f"entries with uncompressed files: {plain[:5]} (store.compact_entry)"
    headers = sorted(p.parent.name for p in root.glob("*/bitnet_model.h"))
    assert not headers, f"entries with a build product (bitnet_model.h): {headers[:5]}"
    for m in root.glob("*/metrics.json.xz"):
        text = lzma.decompress(m.read_bytes()).decode()
        assert json_text(store.compact_metrics(json.loads(text))) == text, m


def test_verify_of_a_store_entry_writes_its_header_to_the_cache(dirs, monkeypatch):
    monkeypatch.setenv("BITNET_PUBLISH", "1")
    bk.run_cached(TINY)
    entry = bk.run_dir_of(TINY)
    (dirs / "cache" / entry.name / "bitnet_model.h").unlink(missing_ok=True)
    r = bk.verify_cached(TINY)
    assert r["mismatch_c_int"] == 0 and not (entry / "bitnet_model.h").exists()
    assert (dirs / "cache" / entry.name / "bitnet_model.h").exists()
