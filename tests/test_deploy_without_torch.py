"""The deployment side works from the exported model alone: with torch made
unimportable, bitnetlib.deploy packs a model, writes its header, runs it in the C
engine and checks it against the integer model."""
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent('''
    import sys
    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this test")
    sys.meta_path.insert(0, NoTorch())

    import numpy as np
    from bitnetlib.deploy import cycles, emulator, engine, firmware, intmodel, packing
    from bitnetlib.deploy.model import Exported, LayerSpec, write_header
    from bitnetlib.wtypes import TYPES

    rng = np.random.default_rng(0)
    shapes, wt = [(256, 24), (24, 16), (16, 10)], ["4bitsym", "Ternary", "8bit"]
    layers = [LayerSpec(str(i), "fc", t, n_in, n_out,
                        rng.choice(np.array(TYPES[t].fields), size=(n_out, n_in)))
              for i, ((n_in, n_out), t) in enumerate(zip(shapes, wt))]
    exp = Exported(layers, 256, 10)
    exp.model_id = exp.fingerprint()
    header = write_header(exp, sys.argv[1] + "/model.h")
    x = intmodel.input_codes(rng.normal(size=(50, 16, 16)).astype(np.float32))
    pred, logits = engine.EngineModel(header, exp.model_id).run(x.astype(np.int8))
    ref = intmodel.run(exp, x)
    assert np.array_equal(pred, ref.pred) and np.array_equal(logits, ref.logits)
    from bitnetlib.deploy import codestats, huffbench
    stats = codestats.layer_stats(exp)                  # Huffman-codes every layer
    for (f, k), s in zip(huffbench.layer_fields(exp), stats):
        c = huffbench.huffman.encode_fields(f, k)
        assert s["huffman_bytes"] == c.total_bytes
        assert np.array_equal(huffbench.c_decode(c.words, c.table, f.size), f)
    assert "torch" not in sys.modules
    print("deploy without torch: ok")
''')


def test_deploy_imports_and_runs_without_torch(tmp_path):
    res = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "deploy without torch: ok" in res.stdout
