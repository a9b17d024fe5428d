"""Stochastic weight averaging (Izmailov et al. 2018) of the latent float weights.

From ``swa_start_epoch`` on, the weights at the end of every epoch enter an equal-weight
running average. Only the float parameters are averaged: the average is quantized like
any weights, with clips re-chosen from it (the plan's caveat: averaging moves weights
off the quantization levels they were trained on, which adds noise).

>>> model = torch.nn.Linear(2, 1, bias=False)
>>> avg = WeightAverage(model)
>>> for v in (1.0, 2.0, 6.0):
...     _ = model.weight.data.fill_(v); avg.update(model)
>>> avg.averaged_model(model).weight.tolist(), avg.n
([[3.0, 3.0]], 3)
"""
import copy

import torch


class WeightAverage:
    def __init__(self, model):
        self.n = 0
        self.avg = {name: p.detach().clone() for name, p in model.named_parameters()}

    @torch.no_grad()
    def update(self, model):
        """avg <- avg + (w - avg) / n: the mean of every model passed so far."""
        self.n += 1
        for name, p in model.named_parameters():
            self.avg[name] += (p.detach() - self.avg[name]) / self.n

    @torch.no_grad()
    def averaged_model(self, model):
        """A copy of ``model`` with the averaged parameters (buffers: the model's)."""
        averaged = copy.deepcopy(model)
        for name, p in averaged.named_parameters():
            p.copy_(self.avg[name])
        return averaged

    def state_dict(self) -> dict:
        return {"n": self.n, "avg": self.avg}

    def load_state_dict(self, state: dict):
        self.n, self.avg = state["n"], state["avg"]
