import pytest

from bitnetlib.training.config import ConfigError, load_config, parse_overrides


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_and_overrides(tmp_path):
    cfg = load_config(write(tmp_path, "quant: 2bitsym\nwidths: [16, 16]\n"),
                      ["epochs=3", "widths=[32, 8]", "lr=0.003", "augment=false"])
    assert (cfg.quant, cfg.widths, cfg.epochs, cfg.lr, cfg.augment) == \
        ("2bitsym", [32, 8], 3, 0.003, False)


def test_int_accepted_for_float():
    assert load_config(None, ["lr=1"]).lr == 1.0


def test_unknown_key_names_file_and_valid_keys(tmp_path):
    p = write(tmp_path, "qaunt: 4bit\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert "qaunt" in msg and str(p) in msg and "quant" in msg and "\n" not in msg


@pytest.mark.parametrize("override,expect", [
    ("quant=3bit", "4bitsym"),
    ("scheduler=exponential", "cosine"),
    ("model=rnn", "cnn"),
    ("clip=max", "octav"),
])
def test_bad_choice_lists_valid_choices(override, expect):
    with pytest.raises(ConfigError, match=expect):
        load_config(None, [override])


@pytest.mark.parametrize("override", ["epochs=ten", "widths=64", "augment=3", "epochs=0",
                                      "dropout=1.0", "dropout=-0.1",
                                      "widths=[64, -1]", "quant_per_layer=[4bitsym, x]"])
def test_bad_values(override):
    with pytest.raises(ConfigError):
        load_config(None, [override])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="YAML"):
        load_config(write(tmp_path, "a: [1, 2\n"))


def test_override_needs_equals():
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["epochs"])


def test_shipped_configs_load():
    from pathlib import Path
    configs = sorted(Path(__file__).resolve().parents[1].glob("configs/*.yaml"))
    assert configs
    for c in configs:
        load_config(c)
