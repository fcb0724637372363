import numpy as np
import pytest
import torch
import torch.nn.functional as functional

from qembed_worker.qat.losses import ConfigError, QatLoss, QatSettings, check_precisions
from qembed_worker.quant.codes import Int8Ranges
from qembed_worker.training.losses import distillation_kl, embedding_distillation, mnrl


def _unit(rows: int, d: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return functional.normalize(torch.randn(rows, d, generator=g), dim=-1)


def _ranges(d: int = 16) -> Int8Ranges:
    return Int8Ranges(np.full(d, -0.8, np.float32), np.full(d, 0.8, np.float32))


@pytest.mark.parametrize(
    ("precisions", "weights", "message"),
    [
        (("float32", "int4"), (1, 1), "unknown precision"),
        (("float32", "binary"), (1, 1, 1), "3 value\\(s\\) for 2 precision\\(s\\)"),
        (("int8",), (), "1 precision"),
        (("binary", "binary"), (1, 1), "repeats"),
        ((), (), "empty"),
        (("int8", "binary"), (1, -1), ">= 0"),
        (("int8", "binary"), (0, 0), "at least one"),
    ],
)
def test_precisions_and_weights_are_validated(precisions, weights, message) -> None:
    with pytest.raises(ConfigError, match=message):
        check_precisions(precisions, weights)


def test_quantized_weights_warm_up_linearly() -> None:
    settings = QatSettings(precisions=("float32", "binary"), weights=(1.0, 2.0), warmup_steps=4)
    assert [settings.weight("binary", s) for s in range(6)] == [0.5, 1.0, 1.5, 2.0, 2.0, 2.0]
    assert settings.weight("float32", 0) == 1.0


def test_distillation_is_zero_when_the_student_is_the_teacher() -> None:
    x = _unit(8)
    assert float(distillation_kl(x, x, x, 0.05)) == pytest.approx(0.0, abs=1e-6)
    loss = QatLoss(QatSettings(precisions=("float32", "binary"), weights=(1, 1)), None)
    total, parts = loss.distill(x, x, 0)
    assert parts["float32"] == pytest.approx(0.0, abs=1e-6)
    assert parts["binary"] > 0
    assert float(total) == pytest.approx(parts["binary"], rel=1e-5)


def test_distillation_matches_the_teacher_softmax_without_the_diagonal() -> None:
    teacher, student = _unit(5, seed=1), _unit(5, seed=2)
    t = 0.1
    eye = torch.eye(5, dtype=torch.bool)
    p = functional.softmax((teacher @ teacher.T / t).masked_fill(eye, -1e9), -1)
    log_q = functional.log_softmax((student @ student.T / t).masked_fill(eye, -1e9), -1)
    expected = (p * (p.clamp_min(1e-30).log() - log_q)).sum(-1).mean()
    assert float(distillation_kl(student, student, teacher, t)) == pytest.approx(
        float(expected), rel=1e-5
    )


def test_embedding_distillation_is_zero_for_identical_embeddings() -> None:
    t = _unit(6, d=8)
    loss, parts = embedding_distillation(t.clone(), t, kl_weight=1.0, temperature=0.05)
    assert float(loss) == pytest.approx(0.0, abs=1e-6)
    worse, _ = embedding_distillation(t.flip(0), t, kl_weight=1.0, temperature=0.05)
    assert float(worse) > 0.1
    assert parts["cos"] == pytest.approx(1.0)


def test_embedding_distillation_keeps_each_text_s_similarity_to_itself() -> None:
    # Weight QAT's KL includes the diagonal: it equals torch's KL over full softmaxes.
    teacher, student = _unit(5, seed=1), _unit(5, seed=2)
    t = 0.1
    p = functional.log_softmax(teacher @ teacher.T / t, -1)
    q = functional.log_softmax(student @ student.T / t, -1)
    expected = functional.kl_div(q, p, log_target=True, reduction="batchmean")
    _, parts = embedding_distillation(student, teacher, kl_weight=1.0, temperature=t)
    assert parts["kl"] == pytest.approx(float(expected), rel=1e-5)


def test_mnrl_is_cross_entropy_over_in_batch_documents() -> None:
    q, d = _unit(4, seed=3), _unit(6, seed=4)
    expected = functional.cross_entropy(q @ d.T / 0.05, torch.arange(4))
    assert float(mnrl(q, d, 0.05)) == pytest.approx(float(expected), rel=1e-6)


def test_asymmetric_keeps_the_query_side_in_float32() -> None:
    q, d = _unit(4, seed=5), _unit(4, seed=6)
    ranges = _ranges()
    symmetric = QatLoss(QatSettings(base="mnrl", precisions=("int8",), weights=(1,)), ranges)
    asymmetric = QatLoss(
        QatSettings(base="mnrl", precisions=("int8",), weights=(1,), asymmetric=True), ranges
    )
    _, parts = asymmetric.pairs(q, d, 0)
    assert parts["int8"] == pytest.approx(float(mnrl(q, ranges(d), 0.05)), rel=1e-6)
    _, parts = symmetric.pairs(q, d, 0)
    assert parts["int8"] == pytest.approx(float(mnrl(ranges(q), ranges(d), 0.05)), rel=1e-6)


def test_gradients_reach_the_embeddings_through_every_precision() -> None:
    x = _unit(6).requires_grad_(True)
    loss = QatLoss(QatSettings(precisions=("int8", "binary"), weights=(1, 1)), _ranges())
    total, _ = loss.distill(x * 1.0, _unit(6, seed=9), 0)
    total.backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_learned_scales_are_parameters_only_when_asked() -> None:
    fixed = QatLoss(QatSettings(), _ranges())
    learned = QatLoss(QatSettings(learn_scale=True), _ranges())
    assert not [p for p in fixed.parameters() if p.requires_grad]
    assert sorted(learned.log_scales) == ["binary", "int8"]
    assert all(p.requires_grad for p in learned.log_scales.values())


def test_int8_without_ranges_is_refused() -> None:
    with pytest.raises(ConfigError, match="ranges"):
        QatLoss(QatSettings(precisions=("int8",), weights=(1,)), None)
