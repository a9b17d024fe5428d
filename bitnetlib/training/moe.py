"""A small mixture of experts on the FC model (``model: fc_moe``).

    input (256) -> [trunk: BitLinear(256, T), ReLU]          moe_trunk = T (0: none)
                -> gate:   BitLinear chain -> E gate logits   moe_gate_widths, moe_experts
                -> expert e = argmax(gate logits): BitLinear chain -> 10 logits (widths)

Every layer is a BitLinear of the run's weight type (the gate too), so each piece is an
ordinary FC network the engine already runs; ``bitnetlib.deploy.moe`` chains them. At
inference exactly one expert runs (top-1, hard). Training routes hard as well, so
that it computes what inference computes: the forward takes the argmax of the gate
logits plus Gumbel noise (exploration), the backward the softmax's gradient
(straight-through Gumbel-softmax, Jang et al. 2017); every expert is evaluated on
every image (small models: cheaper than gathering). A load-balancing loss
(Switch Transformer, Fedus et al. 2022: E * sum_e f_e * P_e, f the share of images
routed to e, P the mean gate probability; 1 when balanced) keeps experts in use.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import BitLinear
from .quant import get_quantizer

N_CLASSES = 10


def bit_mlp(sizes, quant: str, norm: str, act: dict, dropout: float = 0.0) -> nn.Sequential:
    """Flatten, then BitLinear sizes[0] -> ... -> sizes[-1] (ReLU inside every layer but
    the first): an FC network ``training.export.export_model`` exports as it is."""
    layers = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        if i > 0 and dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(BitLinear(a, b, get_quantizer(quant), relu_input=i > 0, norm=norm,
                                **(act or {})))
    return nn.Sequential(*layers)


class MoEModel(nn.Module):
    """trunk (optional) -> gate + experts; ``forward`` gives the chosen expert's logits."""

    def __init__(self, n_experts: int, gate_widths, expert_widths, trunk: int, quant: str,
                 in_features: int = 256, norm: str = "rmsnorm", act=None, dropout: float = 0.0):
        super().__init__()
        feat = trunk or in_features
        self.trunk = bit_mlp([in_features, trunk], quant, norm, act) if trunk else None
        self.gate = bit_mlp([feat, *gate_widths, n_experts], quant, norm, act)
        self.experts = nn.ModuleList(bit_mlp([feat, *expert_widths, N_CLASSES], quant, norm,
                                             act, dropout) for _ in range(n_experts))
        self.n_experts = n_experts

    def features(self, x):
        """What gate and experts read: the flattened image, or the trunk's ReLU output
        (the ReLU here, not inside the next layer: each piece exports on its own)."""
        return x.flatten(1) if self.trunk is None else F.relu(self.trunk(x))

    def route(self, x):
        """(features, gate logits (B, E), chosen expert (B,)): argmax, no noise."""
        h = self.features(x)
        g = self.gate(h)
        return h, g, g.argmax(-1)

    def mix(self, h, weights):
        """sum_e weights[:, e] * expert_e(h): (B, 10)."""
        outs = torch.stack([e(h) for e in self.experts], 1)       # (B, E, 10)
        return (weights.unsqueeze(-1) * outs).sum(1)

    def forward_train(self, x):
        """(logits, balance loss) with hard Gumbel straight-through routing."""
        h = self.features(x)
        g = self.gate(h)
        p = g.softmax(-1)
        u = torch.rand_like(g).clamp_(1e-9, 1 - 1e-9)
        hard = F.one_hot((g - torch.log(-torch.log(u))).argmax(-1), self.n_experts).to(g.dtype)
        logits = self.mix(h, hard + p - p.detach())               # forward: hard
        balance = self.n_experts * (hard.mean(0) * p.mean(0)).sum()
        return logits, balance

    def forward(self, x):
        if self.training:
            return self.forward_train(x)[0]
        h, _, idx = self.route(x)
        return self.mix(h, F.one_hot(idx, self.n_experts).to(h.dtype))


def build_moe(cfg, act: dict) -> MoEModel:
    return MoEModel(cfg.moe_experts, cfg.moe_gate_widths, cfg.widths, cfg.moe_trunk, cfg.quant,
                    norm=cfg.norm, act=act, dropout=cfg.dropout)


def make_moe_step(cfg, loss_fn):
    """The forward + loss of one batch: ``loss_fn(logits, labels, teacher logits)``
    plus ``moe_balance`` times the load-balancing loss."""
    def step(model, xb, yb, tb=None):
        logits, balance = model.forward_train(xb)
        return loss_fn(logits, yb, tb) + cfg.moe_balance * balance, logits
    return step


@torch.no_grad()
def expert_load(model: MoEModel, x, batch: int = 4096) -> torch.Tensor:
    """(E,) share of the images of ``x`` routed to each expert (eval, no noise)."""
    model.eval()
    counts = torch.zeros(model.n_experts)
    for i in range(0, len(x), batch):
        counts += torch.bincount(model.route(x[i:i + batch])[2].cpu(),
                                 minlength=model.n_experts).float()
    return counts / max(len(x), 1)
