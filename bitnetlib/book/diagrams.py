"""Diagrams drawn by code (matplotlib boxes and arrows): the FC network and the pipeline.

``box_diagram`` draws any graph given as boxes at (x, y) and arrows between them;
``architecture`` and ``pipeline`` are the two the book shows.
"""
from ..deploy.packing import per_word

BOX = dict(boxstyle="round,pad=0.35", linewidth=1.0)


def box_diagram(nodes: dict, edges: list, size=(10, 4), colors=None):
    """nodes {name: (x, y, text)} in axis units 0..1, edges [(from, to, label)]; boxes
    are coloured by ``colors`` {name: colour} (default light grey). Returns the figure."""
    import matplotlib.pyplot as plt
    unknown = sorted({n for a, b, _ in edges for n in (a, b)} - set(nodes))
    if unknown:
        raise ValueError(f"edges name boxes {unknown} that are not in nodes")
    fig, ax = plt.subplots(figsize=size)
    ax.set_axis_off()
    ax.set(xlim=(0, 1), ylim=(0, 1))
    texts = {}
    for name, (x, y, text) in nodes.items():
        fc = (colors or {}).get(name, "#eeeeee")
        texts[name] = ax.text(x, y, text, ha="center", va="center", fontsize=8,
                              bbox=dict(BOX, facecolor=fc, edgecolor="#555555"))
    for a, b, label in edges:
        ax.annotate("", xy=nodes[b][:2], xytext=nodes[a][:2],
                    arrowprops=dict(arrowstyle="-|>", color="#333333", shrinkA=0, shrinkB=0,
                                    patchA=texts[a].get_bbox_patch(),
                                    patchB=texts[b].get_bbox_patch()))
        if label:
            mx, my = (nodes[a][0] + nodes[b][0]) / 2, (nodes[a][1] + nodes[b][1]) / 2
            ax.text(mx, my + 0.035, label, ha="center", va="bottom", fontsize=7, color="#333333")
    return fig


def architecture(widths, types, n_in: int = 256, n_classes: int = 10):
    """The FC network: input, then per layer a BitLinear box (shape, weight type, packed
    bytes) and a ShiftNorm + ReLU box; the last layer's logits go to argmax.
    ``types``: one weight type per linear layer."""
    dims = [n_in, *widths, n_classes]
    if len(types) != len(dims) - 1:
        raise ValueError(f"types: {len(dims) - 1} linear layers need as many types, got {types}")
    n = len(types)
    xs = [0.05 + 0.9 * k / (2 * n) for k in range(2 * n + 1)]
    nodes = {"in": (xs[0], 0.25, f"16x16 image\nabsmax\n-> {n_in} x int8")}
    edges, prev = [], "in"
    for i, (a, b, q) in enumerate(zip(dims[:-1], dims[1:], types)):
        nbytes = b * -(-a // per_word(q)) * 4
        nodes[f"fc{i}"] = (xs[2 * i + 1], 0.75, f"BitLinear\n{a} -> {b}\n{q}\n{nbytes} bytes"
                            f"\n-> {b} x int32")
        last = i == n - 1
        nodes[f"n{i}"] = (xs[2 * i + 2], 0.25, "argmax\nof the\nint32 logits" if last
                          else f"ShiftNorm\n+ ReLU\n-> {b} x int8")
        edges += [(prev, f"fc{i}", ""), (f"fc{i}", f"n{i}", "")]
        prev = f"n{i}"
    colors = {k: "#cfe2f3" for k in nodes if k.startswith("fc")}
    return box_diagram(nodes, edges, size=(11, 3.4), colors=colors)


PIPELINE_NODES = {
    "train": (0.09, 0.75, "QAT training\n(PyTorch, bitnetlib.training)\nfake-quant weights"),
    "run": (0.09, 0.3, "run directory / results store\nconfig.yaml, metrics.json,\nmodel.pt"),
    "export": (0.34, 0.52, "export\ninteger codes -> packed\nuint32 words"),
    "header": (0.56, 0.52, "C header\nbitnet_model.h\n(bn_model)"),
    "host": (0.82, 0.88, "host engine (gcc + cppyy)\nvs integer model, 10,000 images"),
    "wasm": (0.82, 0.6, "WebAssembly (clang)\nthe engine in the browser"),
    "fw": (0.82, 0.33, "firmware (riscv gcc, RV32EC)\n16 KB flash, 2 KB SRAM"),
    "emu": (0.82, 0.07, "emulator (Unicorn)\ncycle model, every layer checked"),
}
PIPELINE_EDGES = [("train", "run", ""), ("run", "export", ""), ("export", "header", ""),
                  ("header", "host", ""), ("header", "wasm", ""), ("header", "fw", ""),
                  ("fw", "emu", "")]


def pipeline():
    """The pipeline: training -> export -> C header -> host engine / wasm / firmware ->
    emulator."""
    colors = {"train": "#d9ead3", "run": "#d9ead3", "export": "#fff2cc", "header": "#fff2cc",
              "host": "#cfe2f3", "wasm": "#cfe2f3", "fw": "#f4cccc", "emu": "#f4cccc"}
    return box_diagram(PIPELINE_NODES, PIPELINE_EDGES, size=(11, 4.2), colors=colors)
