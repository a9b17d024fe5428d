"""Export of a trained ``fc_moe`` model: each piece (trunk, gate, experts) is an FC
network that ``export.export_model`` exports as it is; ``deploy.moe`` joins them."""
from ..deploy.moe import ExportedMoE, make_moe
from .export import export_model
from .moe import MoEModel


def export_moe(model: MoEModel, layout: str = "rows") -> ExportedMoE:
    """The integer networks of a trained mixture of experts, in ``layout``."""
    trunk = None if model.trunk is None else export_model(model.trunk, layout=layout)
    return make_moe(trunk, export_model(model.gate, layout=layout),
                    [export_model(e, layout=layout) for e in model.experts])
