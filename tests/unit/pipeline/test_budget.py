"""Issue 28: a run on a host without a GPU trained flight-delay's TabM for ~3 hours without a
word. The task names the kind such a host trains (`model.cpu_kind`), the version records the
kind trained, and the run says its training-time estimate before the first epoch."""

from __future__ import annotations

import logging

import pytest
import torch

from maas.config import ModelParams, load_params
from maas.pipeline.training.budget import (
    SLOW_S,
    Estimate,
    announced_model,
    batch_step,
    model_for_host,
    probe,
    say,
)
from maas.pipeline.training.fit import TensorSet, fit, steps_per_epoch
from maas.pipeline.training.model import TabularNet, build_model_config
from maas.pipeline.training.prepare import training_fingerprint
from tests.conftest import ROOT
from tests.helpers import fit_flights, make_flights

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU path")


@pytest.fixture()
def data(small_params):
    frame = make_flights(400, seed=0)
    pre = fit_flights(frame, small_params)
    cat, num = pre.transform(frame)
    labels = (frame["arr_delay"] >= 15).to_numpy().astype("float32")
    config = build_model_config(pre.cardinalities, num.shape[1], [16], 0.3, 4)
    return config, TensorSet.from_numpy(cat, num, labels)


def test_the_flight_task_trains_its_cpu_kind_where_there_is_no_gpu(small_params) -> None:
    tabm = small_params.model
    assert (tabm.kind, tabm.cpu_kind) == ("tabm", "mlp")  # tasks/flight-delay.yaml
    assert model_for_host(tabm, small_params.train).kind == "mlp"  # train.device=cpu
    everywhere = tabm.model_copy(update={"cpu_kind": None})
    assert model_for_host(everywhere, small_params.train).kind == "tabm"
    cuda = small_params.train.model_copy(update={"device": "cuda"})
    if torch.cuda.is_available():
        assert model_for_host(tabm, cuda).kind == "tabm"


@NO_GPU
def test_auto_without_cuda_is_a_cpu_host() -> None:
    params = load_params(ROOT / "params.yaml", ["train.device=auto"], task="flight-delay")
    assert model_for_host(params.model, params.train).kind == "mlp"
    assert ModelParams.model_validate({}).cpu_kind is None  # params.yaml: kind everywhere


def test_a_checkpoint_of_one_kind_never_resumes_another(small_params) -> None:
    """The kind trained is part of the training job's fingerprint: a checkpoint written by
    the GPU host's TabM is not resumed into the CPU host's MLP."""
    lineage = {"train_partitions": ["2013-01"]}
    args = (small_params.features, small_params.model)
    cpu = training_fingerprint(*args, small_params.train, small_params.data, lineage, "c")
    everywhere = small_params.model.model_copy(update={"cpu_kind": None})
    tabm = training_fingerprint(
        small_params.features, everywhere, small_params.train, small_params.data, lineage, "c"
    )
    assert cpu != tabm


def test_the_probe_leaves_the_network_and_the_random_streams_as_they_were(
    data, small_params
) -> None:
    config, train = data
    torch.manual_seed(0)
    network = TabularNet(config)
    before = {k: v.clone() for k, v in network.state_dict().items()}
    torch.manual_seed(7)
    expected = torch.rand(4)
    torch.manual_seed(7)
    seconds = probe(network, batch_step("binary", train, 64, small_params.train, None))
    assert seconds > 0
    torch.testing.assert_close(torch.rand(4), expected)  # dropout drew from a saved state
    for key, tensor in network.state_dict().items():
        torch.testing.assert_close(tensor, before[key])


def test_fit_says_its_estimate_before_the_first_epoch(data, small_params) -> None:
    config, train = data
    params = small_params.train.model_copy(update={"max_epochs": 3, "batch_size": 64})
    said: list[str] = []
    result = fit(
        config,
        params,
        train,
        train,
        on_estimate=lambda estimate, device: said.append(f"estimate {estimate.epochs} {device}"),
        on_epoch_end=lambda metrics: said.append(f"epoch {metrics['epoch']:.0f}"),
    )
    assert said[:2] == ["estimate 3 cpu", "epoch 1"]
    assert result.estimated_seconds is not None and result.estimated_seconds > 0
    again = fit(config, params, train, train)  # seeded: the probe changed nothing
    assert [h["val_loss"] for h in again.history] == [h["val_loss"] for h in result.history]


def test_the_estimate_names_cpu_kind_when_a_cpu_run_would_be_long() -> None:
    hours = Estimate(step_seconds=2.0, steps_per_epoch=330, epochs=16)
    assert steps_per_epoch(330 * 1024, 1024) == 330
    text = say(hours, "tabm", "cpu", None)
    assert hours.seconds > SLOW_S and "about 2.9 h" in text and "model.cpu_kind" in text
    assert "model.cpu_kind" not in say(hours, "tabm", "cpu", "mlp")
    assert "model.cpu_kind" not in say(hours, "tabm", "cuda", None)
    assert "model.cpu_kind" not in say(hours, "mlp", "cpu", None)  # already the quick one
    minute = Estimate(step_seconds=0.01, steps_per_epoch=330, epochs=16)
    assert "about 53 s" in say(minute, "mlp", "cpu", None)


def test_the_run_logs_the_kind_it_trains_instead(small_params, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="maas.pipeline.training.budget"):
        model_for_host(small_params.model, small_params.train)
        assert caplog.text == ""  # the fingerprint's and tune's look, silent
        announced_model(small_params.model, small_params.train)
    assert caplog.text.count("model.cpu_kind mlp, not tabm") == 1
