"""Feature distillation, the frozen classifier and quantized teachers (issue 13, 14):
bitnetlib.training.distill."""
import pytest
import torch

from bitnetlib import book as bk
from bitnetlib.training.config import ConfigError, load_config
from bitnetlib.training.distill import classifier, forward_with_features
from bitnetlib.deploy import intmodel
from bitnetlib.training.export import check_deployable, export_model
from bitnetlib.training.train import load_teacher, train

QUIET = dict(progress=False, log=lambda s: None)


def test_new_keys_keep_existing_cache_keys():
    assert bk.config_key(load_config(None)) == "bb466dc4e87c6cd0"
    assert bk.config_key(load_config(None, ["distill_feature_weight=0.0",
                                            "distill_frozen_head=false"])) == "bb466dc4e87c6cd0"


@pytest.mark.parametrize("overrides,expect", [
    (["distill_feature_weight=1.0"], "'distill_feature_weight': 1.0 needs a teacher"),
    (["distill_frozen_head=true"], "'distill_frozen_head': True needs a teacher"),
    (["distill_feature_weight=-1.0", "teacher=x"], "'distill_feature_weight': expected >= 0"),
    (["distill_feature_weight=1.0", "teacher=x", "switch_types=[4bitsym, 8bit]"],
     "'distill_feature_weight': not supported with switch_types"),
    (["distill_frozen_head=true", "teacher=x", "prune=random", "prune_density=0.5"],
     "'distill_frozen_head': not supported with prune"),
])
def test_distill_config_errors(overrides, expect):
    with pytest.raises(ConfigError, match=expect) as e:
        load_config(None, overrides)
    assert "\n" not in str(e.value)


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, mnist_subset):
    """A small float FC teacher 32/32 (a trained run)."""
    d = tmp_path_factory.mktemp("distill") / "teacher"
    cfg = load_config(None, ["epochs=2", "augment=false", "widths=[32, 32]", "quant=None",
                             "lr=0.003", "threads=1"])
    train(cfg, d, data=mnist_subset(3000, 1000), **QUIET)
    return d


def test_features_are_what_the_classifier_multiplies(teacher_dir):
    teacher = load_teacher(load_config(None, [f"teacher={teacher_dir}", "distill_alpha=0.5"]), "cpu")
    x = torch.rand(5, 1, 16, 16)
    logits, feature = forward_with_features(teacher, x)
    assert torch.allclose(logits, teacher(x))
    assert feature.shape == (5, 32)
    # the float classifier is linear in the feature
    assert torch.allclose(feature @ classifier(teacher).weight.t(), logits, atol=1e-5)
    assert torch.allclose(feature.pow(2).mean(1), torch.ones(5), atol=1e-3)   # RMSNorm


def test_feature_distillation_learns(mnist, mnist_subset, teacher_dir, tmp_path):
    cfg = load_config(None, ["epochs=2", "augment=false", "widths=[32, 32]", "lr=0.003",
                             "threads=1", f"teacher={teacher_dir}", "distill_alpha=0.5",
                             "distill_feature_weight=1.0"])
    _, metrics = train(cfg, tmp_path / "s", data=mnist_subset(3000, 1000), **QUIET)
    assert metrics[-1]["test_acc"] > 80
    # feature loss alone (no logit term) also learns, from the labels' CE and the features
    only = load_config(None, ["epochs=2", "augment=false", "widths=[32, 32]", "lr=0.003",
                              "threads=1", f"teacher={teacher_dir}",
                              "distill_feature_weight=1.0"])
    _, metrics = train(only, tmp_path / "f", data=mnist_subset(3000, 1000), **QUIET)
    assert metrics[-1]["test_acc"] > 80


def test_frozen_head_is_the_teachers_and_exports(mnist, mnist_subset, teacher_dir, tmp_path):
    cfg = load_config(None, ["epochs=2", "augment=false", "widths=[64, 32]", "lr=0.003",
                             "threads=1", f"teacher={teacher_dir}", "distill_alpha=0.5",
                             "distill_frozen_head=true", "quant=4bitsym"])
    model, metrics = train(cfg, tmp_path / "s", data=mnist_subset(3000, 1000), **QUIET)
    teacher = load_teacher(cfg, "cpu")
    assert torch.equal(classifier(model).weight, classifier(teacher).weight)
    assert metrics[-1]["test_acc"] > 70
    # the student's classifier is the teacher's rounded to 4bitsym
    assert len(classifier(model).quantized_weight().unique()) <= 15
    # export: the integer model agrees with the torch model on most test images
    check_deployable(cfg)
    exp = export_model(model)
    x = mnist.test_x[:500]
    ints = intmodel.run(exp, intmodel.input_codes(x.numpy()))
    assert (ints.pred == model(x).argmax(1).numpy()).mean() > 0.95


def test_width_and_shape_mismatches_are_one_line_errors(mnist_subset, teacher_dir, tmp_path):
    for extra, key in ((["distill_feature_weight=1.0", "widths=[32, 16]"], "distill_feature_weight"),
                       (["distill_frozen_head=true", "widths=[16]"], "distill_frozen_head")):
        cfg = load_config(None, ["epochs=1", "augment=false", f"teacher={teacher_dir}", *extra])
        with pytest.raises(ConfigError, match=f"'{key}'") as e:
            train(cfg, tmp_path / key, data=mnist_subset(300, 100), **QUIET)
        assert "\n" not in str(e.value)


def test_quantized_student_teaches_a_student(mnist, mnist_subset, teacher_dir, tmp_path):
    """Multi-step distillation: float teacher -> 4bitsym assistant -> 2bitsym student."""
    data = mnist_subset(3000, 1000)
    assistant = load_config(None, ["epochs=2", "augment=false", "widths=[32, 32]", "lr=0.003",
                                   "threads=1", f"teacher={teacher_dir}", "distill_alpha=0.7"])
    train(assistant, tmp_path / "a", data=data, **QUIET)
    t = load_teacher(load_config(None, [f"teacher={tmp_path / 'a'}", "distill_alpha=0.5"]), "cpu")
    assert classifier(t).is_quantized and not t.training
    student = load_config(None, ["epochs=2", "augment=false", "widths=[32, 32]", "lr=0.003",
                                 "threads=1", "quant=2bitsym", f"teacher={tmp_path / 'a'}",
                                 "distill_alpha=0.7", "distill_feature_weight=0.5"])
    _, metrics = train(student, tmp_path / "s", data=data, **QUIET)
    assert metrics[-1]["test_acc"] > 70


def test_feature_targets_on_augmented_images_and_resume(mnist_subset, teacher_dir, tmp_path):
    """With augmentation the teacher's features of the new images are computed every
    epoch; a resumed run ends with the same weights as an uninterrupted one."""
    cfg = load_config(None, ["epochs=2", "augment=true", "widths=[32, 32]", "threads=1",
                             f"teacher={teacher_dir}", "distill_feature_weight=1.0",
                             "distill_frozen_head=true"])
    data = mnist_subset(400, 200)
    a, _ = train(cfg, tmp_path / "a", data=data, **QUIET)
    train(cfg, tmp_path / "b", data=data, stop_after=1, **QUIET)
    b, _ = train(cfg, tmp_path / "b", data=data, **QUIET)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
