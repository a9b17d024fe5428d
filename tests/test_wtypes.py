"""The weight-type table (bitnetlib/wtypes.py) is the one home of every type's facts;
these tests hold the quantizers and the C engine's side (c_engine/bitnet.h and its
switches) equal to it, so either side drifting fails here."""
import cppyy
import numpy as np
import pytest

from bitnetlib.deploy import engine as G
from bitnetlib.deploy import packing
from bitnetlib.training.quant import QUANTIZERS
from bitnetlib.wtypes import COLS_TYPES, TYPE_IDS, TYPES


def test_the_c_enum_has_the_same_ids_and_names():
    assert G.c_enum("bn_wtype") == {t.id: "BN_W_" + t.name.upper() for t in TYPES.values()}


@pytest.mark.parametrize("name", list(TYPES))
def test_c_fields_per_word_and_field_values(name):
    t = TYPES[name]
    assert int(G.lib().bn_per_word(t.id)) == t.per_word
    row = np.array([t.fields * 3])                    # every field value, over several words
    words = packing.pack(row, name)
    assert words.shape[1] == -(-row.shape[1] // t.per_word)
    assert G.unpack_row(name, words[0], row.shape[1]).tolist() == row[0].tolist()


@pytest.mark.parametrize("name", list(TYPES))
def test_c_cols_kernel_exists_exactly_for_cols_types(name):
    t = TYPES[name]
    n_in, n_out = 3, 5
    w = packing.pack(np.full((n_in, n_out), t.fields[0]), name)      # (in, words per column)
    act, acc = np.ones(n_in, np.int8), np.zeros(n_out, np.int32)
    status = int(G.lib().bn_fc_cols(t.id, w, w.shape[1], act, n_in, n_out, cppyy.nullptr, acc))
    assert G.status_name(status) == ("BN_OK" if t.cols else "BN_ERR_WTYPE")
    assert (name in COLS_TYPES) == t.cols
    if t.cols:
        assert acc.tolist() == [n_in * t.fields[0]] * n_out


def test_quantizers_read_the_table():
    for name, t in TYPES.items():
        q = QUANTIZERS[name]()
        assert q.levels == t.levels and q.bits == t.bits and q.int_levels == t.int_levels
        assert sorted(t.fields) == sorted(t.int_levels)       # fields: the levels, reordered
    assert set(QUANTIZERS) - set(TYPES) == {"None"}           # float weights: no C kernel


@pytest.mark.parametrize("name", list(TYPES))
def test_c_activation_limit_is_the_table(name):
    t = TYPES[name]
    assert int(G.lib().bn_act_max(t.id)) == t.act_max == QUANTIZERS[name]().act_max
    if t.act_max < 127:                  # a limited type: every product fits int8
        assert max(map(abs, t.int_levels)) * t.act_max <= 127


def test_nf4_table_in_c_is_the_table():
    g = G.lib()
    assert [int(g.bn_nf4_table[i]) for i in range(16)] == list(TYPES["NF4"].int_levels)


def test_status_codes_come_from_the_header():
    codes = G.c_enum("bn_status")
    assert codes[0] == "BN_OK" and all(v < 0 for v in codes if v)
    assert G.status_name(-2) == "BN_ERR_WTYPE" and G.status_name(12345) == "12345"
    assert TYPE_IDS["4bitsym"] == 4
