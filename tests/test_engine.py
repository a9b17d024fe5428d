"""The C engine against the integer model: every accumulator, every type, bad inputs."""
import json
import shutil
import subprocess

import cppyy
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bitnetlib.deploy import engine as G
from bitnetlib.deploy import intmodel as I
from bitnetlib.cli import main
from bitnetlib.training.config import load_config
from bitnetlib.training.train import train
from bitnetlib.deploy import model as dmodel
from bitnetlib.deploy import packing
from bitnetlib import pipeline
from bitnetlib import wtypes

TYPES = list(wtypes.TYPE_IDS)
CNN = "cnn"
NULL = cppyy.nullptr
int8s = st.integers(-128, 127)


def random_layer(wtype, out, n, seed):
    rng = np.random.default_rng(seed)
    return rng.choice(np.array(packing.field_values(wtype)), size=(out, n))


# ---------------------------------------------------------------- kernels

def fc_variant(variant, wtype, w, act, centre=False):
    """Accumulators from the baseline row kernels or the fast cols-layout kernels
    (bn_fc_cols, centred on act[0] when ``centre``); a type without a fast kernel
    runs the baseline."""
    out, n = w.shape
    if variant == "baseline" or wtype not in wtypes.COLS_TYPES:
        return G.fc(wtype, packing.pack(w, wtype), act, n)
    packed = np.ascontiguousarray(packing.pack(w.T, wtype))
    wsum = w.sum(axis=1).astype(np.int32) if centre else None
    acc = np.zeros(out, np.int32)
    G.check(G.lib().bn_fc_cols(wtypes.TYPE_IDS[wtype], packed, packed.shape[1], act, n, out,
                               wsum if centre else NULL, acc), "bn_fc_cols")
    return acc


VARIANTS = ["baseline", "fast"]


@settings(max_examples=150, deadline=None)
@given(wtype=st.sampled_from(TYPES), out=st.integers(1, 40), n=st.integers(1, 260),
       seed=st.integers(0, 2 ** 31), relu=st.booleans(), centre=st.booleans(),
       sparse=st.booleans())
@pytest.mark.parametrize("variant", VARIANTS)
def test_fc_kernel_every_accumulator(variant, wtype, out, n, seed, relu, centre, sparse):
    w = random_layer(wtype, out, n, seed)
    rng = np.random.default_rng(seed + 1)
    lim = wtypes.TYPES[wtype].act_max                     # 4p6: its -16..16 activations
    low = 0 if relu else -128 if lim >= 127 else -lim
    act = rng.integers(low, lim + 1, size=n).astype(np.int8)
    if sparse:        # mostly one value (zero, or a background for the centred kernel)
        act[rng.random(n) < 0.7] = act[0] if centre else 0
    acc = fc_variant(variant, wtype, w, act, centre)
    assert np.array_equal(acc, I.fc(act[None].astype(np.int64), w)[0])


@pytest.mark.parametrize("wtype", wtypes.COLS_TYPES)
@pytest.mark.parametrize("out", [1, 2, 5, 7, 8, 9, 10, 15, 16, 20, 21, 40, 64, 65])
def test_cols_kernel_edge_shapes(wtype, out):
    """The fast kernels at the shapes their loops split on: outputs a multiple of 5
    (a ternary byte), 8 (a 4-bit tile) or 20 (a ternary word) or not; chunks of
    non-zero inputs full, partial or empty (an all-background input); centred or not;
    every d from -255 to 255 reaches a table."""
    rng = np.random.default_rng(out)
    for n, centre, kind in [(1, False, "dense"), (3, True, "dense"), (13, False, "dense"),
                            (100, True, "sparse"), (511, True, "ramp"), (511, True, "ramp-"), (24, False, "zero"),
                            (24, True, "zero")]:
        w = random_layer(wtype, out, n, out * 1000 + n)
        if kind.startswith("ramp"):          # d = act - act[0]: -255..0, then 0..255
            c = 127 if kind == "ramp" else -128
            act = np.concatenate([[c], np.arange(-128, 128), np.arange(127, -127, -1)])
            act = act[:n].astype(np.int8)
        elif kind == "zero":
            act = np.full(n, -7 if centre else 0, np.int8)
        else:
            act = rng.integers(-128, 128, size=n).astype(np.int8)
            if kind == "sparse":
                act[rng.random(n) < 0.8] = act[0]
        lim = wtypes.TYPES[wtype].act_max                 # 4p6: -16..16, d up to +-32
        act = np.clip(act, -128 if lim >= 127 else -lim, lim).astype(np.int8)
        acc = fc_variant("fast", wtype, w, act, centre)
        assert np.array_equal(acc, I.fc(act[None].astype(np.int64), w)[0]), (n, centre, kind)


def test_cols_ternary_corrupt_byte_is_an_error():
    """A byte > 242 in a column the cols kernel reads is BN_ERR_CORRUPT, as in rows."""
    words = np.full((2, 1), 0xFFFFFFFF, np.uint32)         # 2 inputs, 20 outputs
    acc = np.zeros(20, np.int32)
    st = G.lib().bn_fc_cols(wtypes.TYPE_IDS["Ternary"], words, 1, np.ones(2, np.int8), 2, 20,
                            NULL, acc)
    assert G.status_name(int(st)) == "BN_ERR_CORRUPT"


@settings(max_examples=40, deadline=None)
@given(wtype=st.sampled_from(TYPES), n=st.integers(1, 100), seed=st.integers(0, 2 ** 31))
def test_unpack_row_matches_python(wtype, n, seed):
    w = random_layer(wtype, 1, n, seed)
    assert np.array_equal(G.unpack_row(wtype, packing.pack(w, wtype)[0], n), w[0])


def test_extreme_accumulators():
    """Largest sums of every type at the widest layer: exact, no overflow."""
    n = 4096
    for wtype in TYPES:
        vals = packing.field_values(wtype)
        w = np.array([[max(vals)] * n, [min(vals)] * n])
        lim = wtypes.TYPES[wtype].act_max                   # 4p6: -16..16
        pos, neg = (127, -128) if lim >= 127 else (lim, -lim)
        for a in (pos, neg):
            act = np.full(n, a, np.int8)
            act[1::2] = 0 if a > 0 else pos           # centred inputs reach +-255
            for variant in VARIANTS:
                for centre in (False, True):
                    assert np.array_equal(fc_variant(variant, wtype, w, act, centre),
                                          I.fc(act[None].astype(np.int64), w)[0])


@settings(max_examples=150, deadline=None)
@given(acc=st.lists(st.integers(-2 ** 31, 2 ** 31 - 1) | st.integers(-300, 300),
                    min_size=1, max_size=40))
def test_shiftnorm_matches(acc):
    acc = np.array(acc, dtype=np.int32)
    out, shift, argmax = G.shiftnorm_relu(acc)
    ref, ref_shift = I.shiftnorm_relu(acc[None].astype(np.int64))
    assert np.array_equal(out, ref[0]) and shift == ref_shift[0]
    assert argmax == int(np.argmax(acc))


@settings(max_examples=60, deadline=None)
@given(side=st.integers(3, 14), shift=st.integers(0, 14), seed=st.integers(0, 2 ** 31),
       wide=st.booleans())
def test_conv_and_pool_match(side, shift, seed, wide):
    rng = np.random.default_rng(seed)
    x = rng.integers(0 if wide else -127, 32768 if wide else 128,   # the oracle: any int16
                     size=(side, side)).astype(np.int16)
    w = rng.integers(-128, 129, size=9).astype(np.int16)
    out = np.zeros((side - 2) ** 2, np.int16)
    G.check(G.lib().bn_conv3x3_relu(x.ravel(), side, w, shift, out), "conv")
    ref = I.conv3x3_relu(x[None, None].astype(np.int64), w[None].astype(np.int64), shift)
    assert np.array_equal(out, ref.ravel())
    if side % 2 == 0:
        pooled = np.zeros((side // 2) ** 2, np.int16)
        G.check(G.lib().bn_maxpool2x2(x.ravel(), side, pooled), "pool")
        assert np.array_equal(pooled, I.maxpool2(x[None, None]).ravel())


@settings(max_examples=80, deadline=None)
@given(side=st.integers(3, 32), shift=st.integers(0, 16), seed=st.integers(0, 2 ** 31),
       pool=st.booleans(), image=st.booleans(), density=st.floats(0.0, 1.0))
def test_runner_conv_kernels_match_reference(side, shift, seed, pool, image, density):
    """bn_conv3x3_i8 on the image or on a map (product tables, zero skip, centring,
    fused pool) gives the reference's integers: conv + ReLU + rshift + saturation to
    MAP_MAX, then the 2x2 max-pool."""
    pool = pool and side % 2 == 0
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 129, size=9).astype(np.int16)
    if image:
        x = rng.integers(-128, 128, size=(side, side)).astype(np.int8)
        x[rng.random((side, side)) > density] = x.min()          # a background
    else:
        x = (rng.integers(0, I.MAP_MAX + 1, size=(side, side))
             * (rng.random((side, side)) < density)).astype(np.int8)
    ref = I.conv3x3_relu(x[None, None].astype(np.int64), w[None].astype(np.int64), shift)
    ref = I.maxpool2(ref) if pool else ref
    out = np.full(ref.size, -1, np.int8)
    G.check(G.lib().bn_conv3x3_i8(x.ravel(), side, w, shift, int(pool), out), "conv")
    assert np.array_equal(out, ref.ravel())


def test_flat_conv_layout_same_integers(runs, mnist):
    """Conv weights packed flat (the firmware's layout) run the same network."""
    run = runs[CNN][0]
    _, _, exp = pipeline.export_run(run, mnist)
    flat = dmodel.with_layout(exp, "rows", conv_flat=True)
    assert [l.layout for l in flat.layers if l.kind != "fc"] == ["flat"] * 3
    assert flat.weight_bytes < exp.weight_bytes and flat.model_id != exp.model_id
    x = I.input_codes(mnist.test_x[:200]).astype(np.int8)
    outs = []
    for e in (exp, flat):
        h = dmodel.write_header(e, run / f"flat_{e.model_id:08x}.h")
        outs.append(G.EngineModel(h, e.model_id).run(x))
    assert np.array_equal(outs[0][1], outs[1][1])


def test_headers_at_a_reused_path_each_load_their_own_model(runs, mnist, tmp_path):
    """Headers written one after another to the same name in temporary directories (as
    the firmware builds do): each loads as its own model, though the file system may
    hand a deleted file's inode to the next one (cling once skipped such a file)."""
    import tempfile
    _, _, exp = pipeline.export_run(runs["4bitsym"][0], mnist)
    x = I.input_codes(mnist.test_x[:50])
    for layout in ("rows", "cols", "rows"):
        e = dmodel.with_layout(exp, layout)
        with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
            h = dmodel.write_header(e, f"{tmp}/model.h")
            _, logits = G.EngineModel(h, e.model_id).run(x.astype(np.int8))
        assert np.array_equal(logits, I.run(e, x).logits)


def test_unknown_type_and_corrupt_weights_are_errors():
    act = np.ones(8, np.int8)
    words = np.full((1, 1), 0xFFFFFFFF, np.uint32)
    for bad in (0, 10, 255):
        with pytest.raises(G.EngineError, match="BN_ERR_WTYPE"):
            G.fc(bad, words, act, 8)
    with pytest.raises(G.EngineError, match="BN_ERR_CORRUPT"):    # byte 255 > 242
        G.fc("Ternary", words, act, 8)
    with pytest.raises(G.EngineError, match="BN_ERR_SHAPE"):      # 9 inputs need 2 words
        G.fc("4bit", words, np.ones(9, np.int8), 9)


def test_4p6_product_table_and_its_errors():
    """Every product of a 4p6 weight and an activation it takes is one int8 table entry;
    a field 15 (no level) is BN_ERR_CORRUPT, an activation beyond 16 BN_ERR_RANGE."""
    t = [int(G.lib().bn_4p6_table[i]) for i in range(33 * 16)]
    levels = wtypes.TYPES["4p6"].int_levels
    assert t == [(levels[f] * a if f < 15 else 0) for a in range(-16, 17) for f in range(16)]
    assert max(map(abs, t)) == 112 <= 127
    w = packing.pack(np.full((2, 8), 7), "4p6")
    assert G.fc("4p6", w, np.full(8, 16, np.int8), 8).tolist() == [896, 896]
    with pytest.raises(G.EngineError, match="BN_ERR_RANGE"):
        G.fc("4p6", w, np.full(8, 17, np.int8), 8)
    bad = w.copy()
    bad[1, 0] |= 0xF                                  # the row's last field -> 15
    with pytest.raises(G.EngineError, match="BN_ERR_CORRUPT"):
        G.fc("4p6", bad, np.ones(8, np.int8), 8)
    with pytest.raises(G.EngineError, match="BN_ERR_CORRUPT"):
        G.unpack_row("4p6", bad[1], 8)
    with pytest.raises(packing.ExportError, match="field 15 is not a level"):
        packing.unpack(bad, 8, "4p6")
    cols, acc = packing.pack(np.full((8, 2), 7), "4p6"), np.zeros(2, np.int32)   # (in, words)
    st = G.lib().bn_fc_cols(9, cols, 1, np.full(8, -17, np.int8), 8, 2, NULL, acc)
    assert G.status_name(int(st)) == "BN_ERR_RANGE"
    cols[3, 0] |= 0xF0000000                          # input 3's first field -> 15
    st = G.lib().bn_fc_cols(9, cols, 1, np.ones(8, np.int8), 8, 2, NULL, acc)
    assert G.status_name(int(st)) == "BN_ERR_CORRUPT"


@settings(max_examples=150, deadline=None)
@given(act=st.lists(int8s, min_size=1, max_size=40), limit=st.sampled_from([1, 8, 16, 100]))
def test_act_limit_matches(act, limit):
    act = np.array(act, dtype=np.int8)
    out, shift = G.act_limit(act, limit)
    assert np.array_equal(out, I.act_limit(act[None].astype(np.int64), limit)[0])
    assert np.abs(out.astype(int)).max() <= limit


@pytest.mark.parametrize("types", [["4p6", "4p6", "4p6"], ["4bitsym", "4p6", "8bit"],
                                   ["4p6", "Ternary", "4p6"]])
def test_4p6_network_bit_for_bit(types, tmp_path):
    """A random model with 4p6 layers (limited activations at the input and after
    ShiftNorm): the C engine's logits and every accumulator equal the integer model's."""
    rng = np.random.default_rng(len(types[1]))
    shapes = [(256, 24), (24, 16), (16, 10)]
    layers = [dmodel.LayerSpec(str(i), "fc", t, n_in, n_out,
                               rng.choice(np.array(wtypes.TYPES[t].fields), size=(n_out, n_in)))
              for i, ((n_in, n_out), t) in enumerate(zip(shapes, types))]
    exp = dmodel.Exported(layers, 256, 10)
    exp.model_id = exp.fingerprint()
    engine = G.EngineModel(dmodel.write_header(exp, tmp_path / "m.h"), exp.model_id)
    x = I.input_codes(rng.normal(size=(300, 16, 16)).astype(np.float32))
    ref = I.run(exp, x)
    pred, logits = engine.run(x.astype(np.int8))
    assert np.array_equal(pred, ref.pred) and np.array_equal(logits, ref.logits)
    for k in range(0, 300, 37):
        trace = np.concatenate([t[k] for t in ref.trace])
        assert np.array_equal(engine.trace(x[k].astype(np.int8)), trace)
    if types[0] == "4p6":                             # the first layer saw -16..16 only
        first = I.act_limit(x.astype(np.int64), 16)
        assert np.array_equal(ref.trace[0], I.fc(first, layers[0].weights))


def test_wrong_buffers_from_python():
    words = packing.pack(np.ones((2, 8), np.int64), "4bit")
    with pytest.raises(ValueError, match="expected dtype int8"):
        G.fc("4bit", words, np.ones(8, np.int64), 8)
    with pytest.raises(ValueError, match="expected 8 elements, got 7"):
        G.fc("4bit", words, np.ones(7, np.int8), 8)
    with pytest.raises(ValueError, match="expected dtype uint32"):
        G.fc("4bit", words.astype(np.int64), np.ones(8, np.int8), 8)
    with pytest.raises(ValueError, match="expected dtype int32"):
        G.shiftnorm_relu(np.ones(3, np.int64))


def test_engine_builds_freestanding(tmp_path):
    """The same sources compile with no libc: no undefined symbols at all."""
    obj = tmp_path / "engine.o"       # both sources linked into one relocatable object
    subprocess.run(["gcc", *G.CFLAGS, "-ffreestanding", "-nostdlib", "-r", "-o", obj,
                    *[G.C_DIR / s for s in G.SOURCES]], check=True, capture_output=True)
    undefined = subprocess.run(["nm", "-u", obj], capture_output=True, text=True).stdout
    assert undefined.split() == []


# ---------------------------------------------------------------- trained models


@pytest.fixture(scope="module")
def runs(mnist, mnist_subset, tmp_path_factory):
    """One small trained run per weight type (FC 256-32-32-10) and a CNN."""
    torch.set_num_threads(1)
    data, out = mnist_subset(4000), {}
    base = ["epochs=2", "augment=false", "lr=0.003", "threads=1"]
    for name in TYPES + [CNN]:
        over = (["model=cnn", "cnn_channels=8", "widths=[32]",
                 "quant_per_layer=[2bitsym,4bitsym]"] if name == CNN
                else [f"quant={name}", "widths=[32,32]"])
        run = tmp_path_factory.mktemp(f"run_{name}")
        train(load_config(None, base + over), run, data=data, progress=False, log=lambda s: None)
        _, model, exp = pipeline.export_run(run, data)
        dmodel.write_header(exp, run / "bitnet_model.h", str(run))
        out[name] = (run, model, exp)
    return out


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", TYPES + [CNN])
def test_zero_mismatches_on_10000_test_images(runs, mnist, name, variant, tmp_path):
    run, model, exp = runs[name]
    engine = G.EngineModel(run / "bitnet_model.h", exp.model_id)
    if variant == "fast":      # the same model in the cols layout (fast kernels)
        _, _, exp_c = pipeline.export_run(run, mnist, layout="cols")
        dmodel.write_header(exp_c, tmp_path / "cols.h", str(run))
        engine = G.EngineModel(tmp_path / "cols.h", exp_c.model_id)
    x = I.input_codes(mnist.test_x)                                    # (10000, 256)
    ref = I.run(exp, x)
    pred, logits = engine.run(x.astype(np.int8))
    assert len(pred) == 10000
    assert np.array_equal(pred, ref.pred) and np.array_equal(logits, ref.logits)
    for k in range(0, 10000, 500):            # every accumulator of every layer
        trace = np.concatenate([t[k] for t in ref.trace])
        assert np.array_equal(engine.trace(x[k].astype(np.int8)), trace)
    with torch.no_grad():
        fq = model(mnist.test_x).argmax(1).numpy()
    acc_int = (ref.pred == mnist.test_y.numpy()).mean()
    assert acc_int > (0.5 if name in (CNN, "Binary") else 0.8)
    assert (fq != ref.pred).mean() < 0.03     # rounding-level differences only


def test_wrong_inputs_to_a_model(runs):
    run, _, exp = runs["4bitsym"]
    engine = G.EngineModel(run / "bitnet_model.h", exp.model_id)
    with pytest.raises(ValueError, match=r"expected \(N, 256\) int8"):
        engine.run(np.zeros((3, 255), np.int8))
    with pytest.raises(ValueError, match="expected dtype int8"):
        engine.run(np.zeros((3, 256), np.float32))
    g = G.lib()
    logits, pred = np.zeros(10, np.int32), np.zeros(1, np.uint16)
    x = np.zeros(256, np.int8)
    status = g.bn_run_network(engine.model, x, 255, logits, 10, pred, engine.scratch,
                              engine.scratch.nbytes, NULL, 0)
    assert int(status) == int(g.BN_ERR_SHAPE)
    status = g.bn_run_network(engine.model, x, 256, logits, 10, pred, engine.scratch, 16,
                              NULL, 0)
    assert int(status) == int(g.BN_ERR_SCRATCH)


def test_header_for_another_model(runs, capsys):
    run_a = runs["4bit"][0]
    header_b = runs["8bit"][0] / "bitnet_model.h"
    with pytest.raises(packing.ExportError, match="exported from another model"):
        pipeline.verify(run_a, header_b)
    assert main(["verify", str(run_a), "--header", str(header_b)]) == 2
    assert "another model" in capsys.readouterr().err


def test_corrupt_model_file(runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(runs["2bitsym"][0], run)
    data = (run / "model.pt").read_bytes()
    (run / "model.pt").write_bytes(data[: len(data) // 2])
    assert main(["export", str(run)]) == 2
    assert "cannot read the model file" in capsys.readouterr().err
    (run / "model.pt").write_bytes(b"not a torch file")
    assert main(["verify", str(run)]) == 2
    assert "model.pt" in capsys.readouterr().err


def bad_model_header(exp, path, model_id, edit):
    """A header for ``exp`` under another id, with ``edit`` applied to its text."""
    fake = dmodel.Exported(exp.layers, exp.input_len, exp.n_classes, model_id)
    dmodel.write_header(fake, path)
    path.write_text(edit(path.read_text()))
    return path


def test_bad_headers_are_errors(runs, tmp_path):
    _, _, exp = runs["Ternary"]
    g = G.lib()
    # a description the engine rejects: unknown layer kind, bad magic, unknown type
    cases = [(0xBAD00001, lambda t: t.replace("    {1, 2, 0, 0, 256,", "    {7, 2, 0, 0, 256,"),
              "BN_ERR_LAYER"),
             (0xBAD00002, lambda t: t.replace("{BN_MAGIC,", "{0x12345678u,"), "BN_ERR_MODEL"),
             (0xBAD00003, lambda t: t.replace("    {1, 2, 0, 0, 256,", "    {1, 10, 0, 0, 256,"),
              "BN_ERR_WTYPE")]
    for mid, edit, status in cases:
        path = bad_model_header(exp, tmp_path / f"{mid:x}.h", mid, edit)
        with pytest.raises(G.EngineError, match="rejects this model"):
            G.EngineModel(path)
        model = getattr(g, f"bn_model_{mid:08x}")
        logits, pred = np.zeros(10, np.int32), np.zeros(1, np.uint16)
        scratch = np.zeros(4096, np.int32)
        got = g.bn_run_network(model, np.zeros(256, np.int8), 256, logits, 10, pred,
                               scratch, scratch.nbytes, NULL, 0)
        assert G.status_name(int(got)) == status
    garbage = bad_model_header(exp, tmp_path / "garbage.h", 0xBAD00004,
                               lambda t: t.replace("static const bn_layer", "static const }"))
    with pytest.raises(G.EngineError, match="does not compile"):
        G.EngineModel(garbage)


def test_cli_export_and_verify_json(runs, capsys):
    run = runs[CNN][0]
    assert main(["export", str(run)]) == 0
    out = capsys.readouterr().out
    assert "entropy" in out and "Packed total" in out
    assert main(["verify", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result) >= {"n", "acc_fakequant", "acc_int", "acc_c", "mismatch_c_int",
                           "mismatch_int_fakequant"}
    assert result["n"] == 10000 and result["mismatch_c_int"] == 0


# ---------------------------------------------------------------- sanitizers

def sanitizer_available(tmp_path) -> bool:
    src = tmp_path / "t.c"
    src.write_text("int main(void) { return 0; }\n")
    res = subprocess.run(["gcc", "-fsanitize=address,undefined", src, "-o", tmp_path / "t"],
                         capture_output=True)
    return res.returncode == 0 and subprocess.run([tmp_path / "t"]).returncode == 0


def write_vectors(path, exp, x, ref, seed=0):
    """K (every type), S, C and N records for vectors_driver.c."""
    rng, lines = np.random.default_rng(seed), []
    ints = lambda a: " ".join(str(int(v)) for v in np.ravel(a))
    for wtype in TYPES:
        for n in (1, 7, 20, 33, 112, 257):
            w = random_layer(wtype, 3, n, int(rng.integers(2 ** 31)))
            lim = wtypes.TYPES[wtype].act_max                 # 4p6: -16..16
            act = rng.integers(-128 if lim >= 127 else -lim, lim + 1, size=n)
            words = packing.pack(w, wtype)
            lines.append(f"K {wtypes.TYPE_IDS[wtype]} {n} 3 {words.shape[1]} {ints(words)} "
                         f"{ints(act)} {ints(I.fc(act[None], w))}")
    for _ in range(20):
        acc = rng.integers(-2 ** 31, 2 ** 31, size=17) >> rng.integers(0, 31)
        out, shift = I.shiftnorm_relu(acc[None])
        lines.append(f"S 17 {ints(acc)} {ints(out)} {shift[0]} {np.argmax(acc)}")
    for side in (3, 6, 14):
        xs = rng.integers(0, 32768, size=(1, 1, side, side))     # the oracle: any int16
        w = rng.integers(-128, 129, size=(1, 9))
        lines.append(f"C {side} 9 {ints(w)} {ints(xs)} {ints(I.conv3x3_relu(xs, w, 9))}")
    rows = [f"{ints(x[k])} {ref.pred[k]} {ints(ref.logits[k])}" for k in range(len(x))]
    lines.append(f"N {len(x)} " + " ".join(rows))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("name", [CNN, "Ternary"])
def test_engine_under_asan_and_ubsan(runs, mnist, tmp_path, name):
    if not sanitizer_available(tmp_path):
        pytest.skip("gcc lacks the ASan/UBSan runtime")
    run, _, exp = runs[name]
    x = I.input_codes(mnist.test_x[:300])
    write_vectors(tmp_path / "vectors.txt", exp, x, I.run(exp, x))
    exe = tmp_path / "driver"
    cmd = ["gcc", *G.CFLAGS, "-O1", "-g", "-fsanitize=address,undefined",
           "-fno-sanitize-recover=all", "-I", G.C_DIR, "-include", run / "bitnet_model.h",
           f"-DBN_TEST_MODEL={dmodel.symbol(exp)}", "-o", exe, G.C_DIR / "tests" / "vectors_driver.c",
           *[G.C_DIR / s for s in G.SOURCES]]
    subprocess.run(cmd, check=True, capture_output=True)
    res = subprocess.run([exe, tmp_path / "vectors.txt"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"ok {len(TYPES) * 6 + 20 + 3 + 1}"
