from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from maas.errors import TrainingError
from maas.pipeline.training.checkpoints import load_checkpoint
from maas.pipeline.training.fit import TensorSet, fit, select_device, train_one_epoch
from maas.pipeline.training.model import TabularNet, build_model_config
from tests.helpers import fit_flights, make_flights


def tensors(params, n: int, seed: int, pre=None):
    frame = make_flights(n, seed=seed)
    pre = pre or fit_flights(frame, params)
    cat, num = pre.transform(frame)
    return pre, TensorSet.from_numpy(
        cat, num, frame["label"] if "label" in frame else (frame["arr_delay"] >= 15).to_numpy()
    )


@pytest.fixture()
def data(small_params):
    pre, train = tensors(small_params, 600, 0)
    _, val = tensors(small_params, 200, 1, pre)
    config = build_model_config(pre.cardinalities, train.numeric.shape[1], [16], 0.0, 4)
    return config, train, val


def test_a_few_steps_lower_the_loss(data) -> None:
    config, train, _ = data
    torch.manual_seed(0)
    model = TabularNet(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    losses = [
        train_one_epoch(model, optimizer, train, 64, torch.Generator().manual_seed(e))
        for e in range(8)
    ]
    assert losses[-1] < losses[0] * 0.95


def test_fit_is_seeded_and_reproducible(data, small_params) -> None:
    config, train, val = data
    params = small_params.train.model_copy(update={"max_epochs": 2})
    a = fit(config, params, train, val)
    b = fit(config, params, train, val)

    def without_timing(history: list[dict[str, float]]) -> list[dict[str, float]]:
        return [{k: v for k, v in h.items() if k != "samples_per_second"} for h in history]

    assert without_timing(a.history) == without_timing(b.history)
    for key, tensor in a.model.state_dict().items():
        torch.testing.assert_close(tensor, b.model.state_dict()[key])


def test_killed_run_resumes_from_checkpoint_to_the_same_model(data, small_params, tmp_path) -> None:
    config, train, val = data
    params = small_params.train.model_copy(update={"max_epochs": 4, "patience": 10})
    uninterrupted = fit(config, params, train, val)

    ckpt = tmp_path / "ckpt.pt"

    class Killed(Exception):
        pass

    def kill_after_two(metrics: dict[str, float]) -> None:
        if metrics["epoch"] == 2:
            raise Killed

    with pytest.raises(Killed):
        fit(config, params, train, val, checkpoint_path=ckpt, on_epoch_end=kill_after_two)
    assert load_checkpoint(ckpt)["epoch"] == 1  # killed before epoch 2's checkpoint was written
    resumed = fit(config, params, train, val, checkpoint_path=ckpt)
    assert resumed.resumed_from_epoch == 1
    assert len(resumed.history) == 4
    for key, tensor in uninterrupted.model.state_dict().items():
        torch.testing.assert_close(tensor, resumed.model.state_dict()[key])


def test_checkpoint_loading_refuses_pickled_code(tmp_path: Path) -> None:
    """A hostile checkpoint must not run code: torch.load(weights_only=True) rejects it."""
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "ckpt.pt"
    torch.save({"epoch": 1, "model": Exploit()}, path)
    assert load_checkpoint(path) is None
    assert not marker.exists()


def test_forcing_cuda_without_a_gpu_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(TrainingError, match="no CUDA device"):
        select_device("cuda")
    assert select_device("auto").type == "cpu"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_trains_on_cuda_with_bf16(data, small_params) -> None:
    config, train, val = data
    result = fit(config, small_params.train.model_copy(update={"device": "cuda"}), train, val)
    assert result.device.startswith("cuda")
    assert next(result.model.parameters()).device.type == "cpu"  # returned ready to export


def test_a_checkpoint_resumes_only_the_same_labels_and_code(small_params) -> None:
    """A killed run restarted with another label definition (or other training code) must not
    resume weights and a best loss learned on the old labels: the fingerprint changes."""
    from maas.pipeline.training.prepare import training_fingerprint

    p = small_params
    lineage = {"train_partitions": {"2013-11": "a" * 64}}
    base = training_fingerprint(p.features, p.model, p.train, p.data, lineage)
    assert base == training_fingerprint(p.features, p.model, p.train, p.data, lineage)
    relabeled = p.data.model_copy(
        update={"label": p.data.label.model_copy(update={"threshold": 30})}
    )
    assert training_fingerprint(p.features, p.model, p.train, relabeled, lineage) != base
    rule = p.data.label.model_copy(update={"unlabeled": "positive"})
    positive = p.data.model_copy(update={"label": rule})
    assert training_fingerprint(p.features, p.model, p.train, positive, lineage) != base
    other_code = training_fingerprint(p.features, p.model, p.train, p.data, lineage, code="x")
    assert other_code != base


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_validation_follows_mixed_precision_and_resume_restores_cuda_rng(
    data, small_params, tmp_path
) -> None:
    """With mixed_precision off, validation runs in fp32 too; a resumed CUDA run draws the
    same dropout masks as an uninterrupted one (the CUDA generators are in the checkpoint)."""
    from maas.pipeline.training.fit import predict

    config, train, val = data
    params = small_params.train.model_copy(
        update={
            "device": "cuda",
            "mixed_precision": False,
            "max_epochs": 3,
            "lr_schedule": "constant",
            "patience": 10,
        }
    )
    model = fit(config, params, train, val).model.cuda()
    on_gpu = val.to(torch.device("cuda"))
    fp32 = predict(model, on_gpu, mixed_precision=False)
    assert torch.equal(fp32, predict(model, on_gpu, mixed_precision=False))
    assert not torch.equal(fp32, predict(model, on_gpu, mixed_precision=True))
    whole = fit(config, params, train, val)
    ckpt = tmp_path / "ckpt.pt"
    fit(config, params.model_copy(update={"max_epochs": 1}), train, val, checkpoint_path=ckpt)
    assert torch.load(ckpt, weights_only=True)["cuda_rng_state"]
    resumed = fit(config, params, train, val, checkpoint_path=ckpt)
    pairs = zip(whole.model.state_dict().values(), resumed.model.state_dict().values(), strict=True)
    for a, b in pairs:
        assert torch.allclose(a, b, atol=1e-6)


def test_leaving_optional_inputs_out_is_what_serving_sees_without_them(small_params) -> None:
    """Training's left-out rows must look exactly like requests that omit the optional
    inputs (weather): the same numeric matrix the preprocessing builds for such a record."""
    from maas.pipeline.training.augment import Augmentation

    frame = make_flights(200, seed=5)
    pre = fit_flights(frame, small_params)
    assert pre.optional_inputs == [
        "temp",
        "dewp",
        "humid",
        "wind_dir",
        "wind_speed",
        "wind_gust",
        "precip",
        "pressure",
        "visib",
    ]
    _, full = pre.transform(frame)
    _, without = pre.transform(frame.drop(columns=pre.optional_inputs))
    everything = Augmentation(*pre.optional_positions, optional_rate=0.999999)
    left_out = everything.leave_out(torch.as_tensor(full), torch.Generator().manual_seed(0))
    assert torch.equal(left_out, torch.as_tensor(without))
    some = Augmentation(*pre.optional_positions, optional_rate=0.25)
    batch = torch.as_tensor(full)
    masked = some.leave_out(batch, torch.Generator().manual_seed(1))
    changed = (masked != batch).any(dim=1).float().mean().item()
    assert 0.15 < changed < 0.35 and torch.equal(batch, torch.as_tensor(full))  # a copy


def test_the_unknown_bucket_is_trained(data, small_params) -> None:
    """No training row falls into a vocabulary's unknown bucket (index 0), so its embedding
    stayed at its random start; masking a share of category values trains it."""
    from maas.pipeline.training.augment import Augmentation

    config, train, val = data
    torch.manual_seed(small_params.train.seed)
    start = TabularNet(config).embeddings[0].weight[0].detach().clone()
    plain = fit(config, small_params.train, train, val)
    assert torch.equal(plain.model.embeddings[0].weight[0], start)  # never trained
    masked = fit(config, small_params.train, train, val, augment=Augmentation(unknown_rate=0.05))
    assert not torch.equal(masked.model.embeddings[0].weight[0], start)


def test_the_epoch_kept_is_the_best_by_the_selection_metric(data, small_params) -> None:
    """`select_by: score` keeps the epoch of the highest validation ROC AUC, `loss` that of the
    lowest validation loss; the weights returned are that epoch's."""
    from maas.pipeline.training.fit import evaluate_epoch, predict

    config, train, val = data
    kept = []
    for select_by, key, pick in (("score", "val_roc_auc", max), ("loss", "val_loss", min)):
        params = small_params.train.model_copy(
            update={"max_epochs": 6, "patience": 6, "select_by": select_by, "learning_rate": 0.05}
        )
        result = fit(config, params, train, val)
        chosen = pick(result.history, key=lambda h: h[key])
        assert result.best_epoch == int(chosen["epoch"])
        assert evaluate_epoch(result.model, val)[key] == pytest.approx(chosen[key], abs=1e-6)
        assert predict(result.model, val).shape == (len(val),)
        kept.append(result.best_epoch)
    assert kept[0] != kept[1]  # on these rows the two metrics disagree: the test tells them apart


def test_a_one_class_validation_slice_chooses_by_loss(data, small_params) -> None:
    """ROC AUC is undefined on a slice of one class: the loss picks the epoch instead of no
    epoch at all (the untrained weights)."""
    from maas.pipeline.training.fit import selection_metric

    config, train, val = data
    one_class = TensorSet(val.categorical, val.numeric, torch.zeros_like(val.labels))
    params = small_params.train.model_copy(update={"select_by": "score"})
    assert selection_metric(params, config, val) == "val_roc_auc"
    assert selection_metric(params, config, one_class) == "val_loss"
    result = fit(config, params.model_copy(update={"max_epochs": 2}), train, one_class)
    assert result.best_epoch >= 1


def test_a_checkpoint_resumes_only_the_same_selection_metric(data, small_params, tmp_path) -> None:
    """A checkpoint's best epoch was chosen by one metric; a run choosing by another starts
    afresh instead of comparing a loss with a score."""
    config, train, val = data
    by_score = small_params.train.model_copy(update={"max_epochs": 3, "select_by": "score"})
    by_loss = by_score.model_copy(update={"select_by": "loss"})

    class Killed(Exception):
        pass

    def kill_after_two(metrics: dict[str, float]) -> None:
        if metrics["epoch"] == 2:
            raise Killed

    for resumed_by, expected in ((by_score, 1), (by_loss, None)):
        path = tmp_path / f"{resumed_by.select_by}.pt"
        with pytest.raises(Killed):
            fit(config, by_score, train, val, checkpoint_path=path, on_epoch_end=kill_after_two)
        resumed = fit(config, resumed_by, train, val, checkpoint_path=path)
        assert resumed.resumed_from_epoch == expected
