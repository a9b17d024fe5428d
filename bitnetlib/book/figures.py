"""Tables, sizes and weight pictures for the chapters."""
import torch

from ..training.layers import quant_layers


def total_bits(metrics_or_layers) -> float:
    """Total weight bits of a run (final epoch) or of a ``layers`` list."""
    layers = metrics_or_layers
    if layers and "layers" in layers[-1]:
        layers = layers[-1]["layers"]
    return sum(s["bits"] for s in layers)


def n_weights(metrics_or_layers) -> int:
    layers = metrics_or_layers
    if layers and "layers" in layers[-1]:
        layers = layers[-1]["layers"]
    return sum(s["n_weights"] for s in layers)


def markdown_table(rows: list, columns=None) -> str:
    """A Markdown table from a list of dicts (floats shown with 4 significant digits).

    Header names get a zero-width space after each underscore: a wide table wraps
    ``mismatch_c_int`` at its underscores to fit the page, not in mid-word.
    """
    columns = columns or list(rows[0])
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
    header = [str(c).replace("_", "_\u200b") for c in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def first_layer_images(model) -> torch.Tensor:
    """The first linear layer's quantized weights as (out, 16, 16) images."""
    layer = quant_layers(model)[0]
    w = layer.quantized_weight() if layer.is_quantized else layer.weight.detach()
    return w.detach().cpu().reshape(w.shape[0], 16, 16)


def plot_weight_grid(images, ax_title="", cols=8, size=1.0):
    """A grid of signed weight images (blue negative, red positive), one per row of w."""
    import matplotlib.pyplot as plt
    rows = (len(images) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size))
    for ax in axes.flat:
        ax.axis("off")
    for ax, img in zip(axes.flat, images):
        lim = float(img.abs().max()) or 1.0
        ax.imshow(img, cmap="bwr", vmin=-lim, vmax=lim)
    fig.suptitle(ax_title)
    fig.tight_layout()
    return fig
