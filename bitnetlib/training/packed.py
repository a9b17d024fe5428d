"""The results store's compact forms of run files: a torch file or metrics.json
xz-compressed, the same bytes (``NAME.xz``). A run directory holds either form; these
find and read whichever it has.

>>> import tempfile; from pathlib import Path
>>> d = Path(tempfile.mkdtemp()); _ = (d / "metrics.json.xz").write_bytes(xz_bytes(b"[]"))
>>> metrics_file(d).name, metrics_text(metrics_file(d))
('metrics.json.xz', '[]')
"""
import lzma
from pathlib import Path

XZ = ".xz"


def plain_or_packed(run_dir, name: str) -> Path:
    """RUN_DIR/NAME, or RUN_DIR/NAME.xz where only that exists."""
    plain = Path(run_dir) / name
    packed = plain.with_name(plain.name + XZ)
    return packed if packed.exists() and not plain.exists() else plain


def model_file(run_dir) -> Path:
    """A run's final model: model.pt, or the store's model.pt.xz."""
    return plain_or_packed(run_dir, "model.pt")


def metrics_file(run_dir) -> Path:
    """A run's metrics: metrics.json, or the store's metrics.json.xz."""
    return plain_or_packed(run_dir, "metrics.json")


def metrics_text(path: Path) -> str:
    """The JSON text of a metrics file, plain or xz-compressed (``metrics_file``)."""
    data = path.read_bytes()
    return (lzma.decompress(data) if path.name.endswith(XZ) else data).decode()


def xz_bytes(data: bytes) -> bytes:
    """A torch or metrics file's bytes as the store keeps them (lossless; float32
    weights compress to about three quarters, the metrics' JSON to about a sixth)."""
    return lzma.compress(data, preset=9)
