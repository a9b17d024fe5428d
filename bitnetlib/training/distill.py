"""Feature distillation and the frozen classifier (issue 13; the ViT report's feature
distillation, shared/seeds/004), beside the logit distillation of ``train``.

The feature of a network is what its last BitLinear (the classifier) multiplies: the
input of that layer after its ReLU and its normalisation (RMSNorm or LayerNorm, the
layer's own), before the 8-bit activation rounding; a vector of unit RMS per image. The
feature loss is ``distill_feature_weight`` times the mean squared difference of the
student's feature and the teacher's. No projection: student and teacher must have the
same width at the last hidden layer (the float CNN teacher's head 96 -> 64 -> 10 and
the 64/64/64 FC student both end in 64); anything else is a one-line ConfigError. With
the same width and the same classifier, a student whose feature equals the teacher's
gives the teacher's logits; this is why the feature is taken where the classifier
reads it.

``distill_frozen_head``: the student's classifier starts as a copy of the teacher's
weights and is never trained (``requires_grad`` off: Adam skips it). The teacher's
classifier may be float and the student's quantized: the copied float weights are the
student's latent weights, which its quantizer rounds (with the prop or OCTAV clip of
those weights) like any others; so the student's classifier is the teacher's rounded
to the student's type. The shapes (and the normalisation) must match.

The teacher's targets of a batch are one tensor, its logits with its features
appended ((N, 10 + width); the logits alone without feature distillation), so that
the training loop indexes them as it indexes the logits.
"""
import torch
import torch.nn.functional as F

from .layers import BitLinear, normalize
from .models import N_CLASSES
from .validate import ConfigError


def distillation_loss(logits, yb, teacher_logits, alpha: float, temperature: float,
                      label_smoothing: float = 0.0):
    """(1 - alpha) CE(labels) + alpha T^2 KL(teacher_T || student_T), Hinton et al. 2015;
    plain cross entropy without a teacher. ``label_smoothing`` softens the labels' CE."""
    ce = F.cross_entropy(logits, yb, label_smoothing=label_smoothing)
    if teacher_logits is None:
        return ce
    kd = F.kl_div(F.log_softmax(logits / temperature, -1),
                  F.log_softmax(teacher_logits / temperature, -1),
                  log_target=True, reduction="batchmean")
    return (1 - alpha) * ce + alpha * temperature ** 2 * kd


def uses_teacher(cfg) -> bool:
    """Whether a run needs its teacher: logit or feature distillation, or its classifier."""
    return bool(cfg.teacher) and (cfg.distill_alpha > 0 or cfg.distill_feature_weight > 0
                                  or cfg.distill_frozen_head)


def classifier_index(model) -> int:
    """The position of the last BitLinear among the model's (Sequential) children."""
    found = [i for i, m in enumerate(model) if isinstance(m, BitLinear)]
    if not found:
        raise ValueError(f"{type(model).__name__}: no BitLinear classifier")
    return found[-1]


def classifier(model) -> BitLinear:
    return model[classifier_index(model)]


def forward_with_features(model, x):
    """(logits, feature): one forward pass, module by module (no hooks, so the step
    compiles); the feature is what the classifier multiplies (module docstring)."""
    last = classifier_index(model)
    for i, m in enumerate(model):
        if i == last:
            h = x.clamp_min(0) if m.relu_input else x
            feature = normalize(h, m.norm)
        x = m(x)
    return x, feature


@torch.no_grad()
def teacher_targets(cfg, teacher, x, batch: int = 4096):
    """The teacher's logits for all of x, with its features appended when the run
    distils features; eval mode, large batches."""
    outs = []
    for i in range(0, x.shape[0], batch):
        if cfg.distill_feature_weight > 0:
            outs.append(torch.cat(forward_with_features(teacher, x[i:i + batch]), 1))
        else:
            outs.append(teacher(x[i:i + batch]))
    width = N_CLASSES + (classifier(teacher).in_features if cfg.distill_feature_weight > 0 else 0)
    return torch.cat(outs) if outs else x.new_empty((0, width))


def attach_teacher(cfg, model, teacher):
    """Check the widths feature distillation compares; copy and freeze the teacher's
    classifier into the student's (``distill_frozen_head``)."""
    mine, theirs = classifier(model), classifier(teacher)
    if cfg.distill_feature_weight > 0 and mine.in_features != theirs.in_features:
        raise ConfigError(f"config key 'distill_feature_weight': the last hidden layers "
                          f"differ in width (student {mine.in_features}, teacher "
                          f"{theirs.in_features} in {cfg.teacher}); they must be equal")
    if cfg.distill_frozen_head:
        if mine.weight.shape != theirs.weight.shape or mine.norm != theirs.norm:
            raise ConfigError(f"config key 'distill_frozen_head': the classifiers differ "
                              f"(student {tuple(mine.weight.shape)} {mine.norm}, teacher "
                              f"{tuple(theirs.weight.shape)} {theirs.norm} in {cfg.teacher})")
        with torch.no_grad():
            mine.weight.copy_(theirs.weight)
        mine.weight.requires_grad_(False)


def feature_distillation_loss(logits, feature, yb, tb, cfg):
    """The logit loss of ``distillation_loss`` (CE alone when distill_alpha is 0)
    plus distill_feature_weight * MSE(student feature, teacher feature)."""
    t_logits, t_feature = tb[:, :N_CLASSES], tb[:, N_CLASSES:]
    loss = distillation_loss(logits, yb, t_logits if cfg.distill_alpha > 0 else None,
                             cfg.distill_alpha, cfg.distill_temperature, cfg.label_smoothing)
    return loss + cfg.distill_feature_weight * F.mse_loss(feature, t_feature)


def make_feature_step(cfg):
    """A step function (model, xb, yb, tb) -> (loss, logits) with the feature loss."""
    def step(model, xb, yb, tb=None):
        logits, feature = forward_with_features(model, xb)
        return feature_distillation_loss(logits, feature, yb, tb, cfg), logits
    return step
