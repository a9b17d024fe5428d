"""The weights' Huffman coder: Python encoder -> C decoder (cppyy and the emulated
CH32V003) gives back exactly the packed fields of real models; edge cases and bad
input; per-layer statistics."""
import heapq
from pathlib import Path

import numpy as np
import pytest
import yaml

from bitnetlib import pipeline
from bitnetlib.book import derived
from bitnetlib.deploy import codestats, firmware, huffbench, huffman, packing
from bitnetlib.deploy.engine import EngineError, status_name
from bitnetlib.deploy.model import Exported, LayerSpec
from bitnetlib.wtypes import TYPES

REPO = Path(__file__).resolve().parents[1]


def stored_run(wtype: str):
    """A stored FC run of one weight type (results/runs), or None."""
    for cfg_path in sorted((REPO / "results" / "runs").glob("*/config.yaml")):
        c = yaml.safe_load(cfg_path.read_text())
        if c.get("model") == "fc" and c.get("quant") == wtype and not c.get("quant_per_layer") \
                and c.get("norm", "rmsnorm") == "rmsnorm" and c.get("prune", "none") == "none" \
                and c.get("act_bits", 8) == 8 and c.get("act_quant", "absmax") == "absmax":
            return cfg_path.parent
    return None


@pytest.fixture(scope="module", params=list(TYPES))
def real_exp(request):
    run = stored_run(request.param)
    if run is None:
        pytest.skip(f"no stored FC run of type {request.param}")
    return pipeline.export_run(run)[2]


def test_real_models_round_trip_through_the_c_decoder(real_exp):
    for fields, n_fields in huffbench.layer_fields(real_exp):
        coded = huffman.encode_fields(fields, n_fields)
        assert coded.table.max_len <= huffman.MAX_LEN
        assert np.array_equal(huffman.decode(coded.words, coded.table, fields.size), fields)
        assert np.array_equal(huffbench.c_decode(coded.words, coded.table, fields.size), fields)
        row = real_exp.layers[0].n_in                   # row by row: the reader resumes
        assert np.array_equal(huffbench.c_decode(coded.words, coded.table, fields.size, row),
                              fields)


def test_layer_stats_agree_with_the_packing_and_the_code(real_exp):
    rows = codestats.layer_stats(real_exp)
    for r, l in zip(rows, real_exp.layers):
        assert r["n_weights"] == l.weights.size and r["packed_bytes"] == l.packed.nbytes
        assert 0 <= r["entropy"] <= r["level_bits"] + 1e-9
        assert r["entropy"] <= r["huffman_bits"] < r["entropy"] + 1    # Huffman's bound
        assert r["codes_used"] <= r["n_codes"] == len(TYPES[l.wtype].levels)


def huffman_cost(counts) -> int:
    h = [c for c in counts if c > 0]
    heapq.heapify(h)
    cost = 0
    while len(h) > 1:
        a, b = heapq.heappop(h), heapq.heappop(h)
        cost += a + b
        heapq.heappush(h, a + b)
    return cost


def test_unlimited_lengths_cost_what_huffman_costs():
    rng = np.random.default_rng(1)
    for _ in range(50):
        counts = rng.geometric(rng.uniform(0.02, 0.5), size=rng.integers(2, 257))
        counts[rng.random(counts.size) < 0.2] = 0
        counts[:2] += 1
        lens = huffman.code_lengths(counts)
        assert sum(int(c) * n for c, n in zip(counts, lens)) == huffman_cost(counts)


FIB = [1, 1]
while len(FIB) < 40:
    FIB.append(FIB[-1] + FIB[-2])


@pytest.mark.parametrize("max_len", [15, 8, 6])
def test_length_limit_holds_and_decodes_exactly(max_len):
    counts = FIB[:40] if max_len == 15 else FIB[:2 ** max_len // 2]
    lens = huffman.code_lengths(counts, max_len)
    assert max(lens) <= max_len and sum(2.0 ** -n for n in lens) == 1.0
    symbols = np.random.default_rng(0).permutation(np.repeat(np.arange(len(counts)), 3))
    table = huffman.Table.from_lengths(lens)
    words, n_bits = huffman.encode(symbols, table)
    assert n_bits == sum(lens[s] for s in symbols)
    assert np.array_equal(huffbench.c_decode(words, table, symbols.size, chunk=7), symbols)


def test_one_symbol_layer_codes_one_bit_per_weight():
    coded = huffman.encode_fields(np.full(37, 5), 16)
    assert coded.table.count == [1] and coded.n_bits == 37 and not coded.words.any()
    assert np.array_equal(huffbench.c_decode(coded.words, coded.table, 37), np.full(37, 5))


def test_bad_input_is_one_clear_error():
    with pytest.raises(huffman.HuffmanError, match="max_len=2: 5 symbols"):
        huffman.code_lengths([1, 1, 1, 1, 1], max_len=2)
    with pytest.raises(huffman.HuffmanError, match="max_len=16"):
        huffman.code_lengths([1, 1], max_len=16)
    with pytest.raises(huffman.HuffmanError, match="every count is 0"):
        huffman.code_lengths([0, 0])
    with pytest.raises(huffman.HuffmanError, match="over-subscribed"):
        huffman.Table.from_lengths([1, 1, 1])
    with pytest.raises(huffman.HuffmanError, match="0..3, got 0..4"):
        huffman.encode_fields([0, 4], 4)
    with pytest.raises(huffman.HuffmanError, match=r"symbols \[2\]"):
        huffman.encode([2], huffman.Table.from_lengths([1, 1]))


def test_c_decoder_reports_a_short_stream_and_unknown_codes():
    table = huffman.Table.from_lengths([1, 2, 0, 0])      # codes 0, 10; 11 is unused
    words, _ = huffman.encode([0, 1] * 16, table)
    with pytest.raises(EngineError, match="BN_ERR_SHAPE"):
        huffbench.c_decode(words, table, 49)     # 48 bits, then 16 padding bits (code 0)
    with pytest.raises(EngineError, match="BN_ERR_CORRUPT"):
        huffbench.c_decode(np.array([0xC0000000], np.uint32), table, 1)
    with pytest.raises(huffman.HuffmanError, match="symbol 0: bits match no code"):
        huffman.decode(np.array([0xC0000000], np.uint32), table, 1)
    g = huffbench.library()
    count, symbol = np.array([2, 1], np.uint16), np.array([0, 1, 2], np.uint8)
    t = g.bn_py_huff_table(count, symbol, 2)               # 2 codes of 1 bit + 1 of 2
    assert status_name(g.bn_huff_table_check(t, 3)) == "BN_ERR_CORRUPT"
    assert status_name(g.bn_huff_table_check(t, 2)) == "BN_ERR_CORRUPT"
    ok = g.bn_py_huff_table(np.array([1, 2], np.uint16), symbol, 2)
    assert status_name(g.bn_huff_table_check(ok, 3)) == "BN_OK"
    assert status_name(g.bn_huff_table_check(ok, 4)) == "BN_ERR_SHAPE"


def test_decoder_sources_decide_no_firmware_run():
    """firmware_source_hash leaves the coder out (its files exist under those names)."""
    names = {p.name for d in ("c_engine", "firmware", "bitnetlib/deploy")
             for p in (REPO / d).iterdir()}
    assert set(derived.NOT_FIRMWARE) <= names


@pytest.mark.skipif(not firmware.have_toolchain(), reason="RISC-V toolchain missing")
def test_emulated_decoder_gives_back_every_field():
    rng = np.random.default_rng(2)
    layers = []
    for i, (q, n_in, out) in enumerate([("4bitsym", 40, 6), ("Ternary", 6, 5), ("8bit", 5, 3)]):
        vals = np.array(packing.field_values(q))
        layers.append(LayerSpec(str(i), "fc", q, n_in, out, rng.choice(vals, size=(out, n_in))))
    exp = Exported(layers, 40, 3)
    rows = huffbench.emulate(exp)                # raises on any wrong field
    assert [r["n_weights"] for r in rows] == [240, 30, 15]
    assert all(0 < r["decode_cycles"] <= r["cycles"] for r in rows)
