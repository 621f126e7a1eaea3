"""The pipeline stages, one implementation each: the Prefect tasks of flows/training_tasks.py and
`dvc.yaml` stages (`maas stage ...`) call these same functions.

Stages hand data to each other through files (data/processed, models/, reports/), which is
what DVC tracks; each function receives only the parameter sections it needs. The register
stage (MLflow only, not a DVC stage) is in `maas.pipeline.register`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from maas.config import (
    DataParams,
    EvaluateParams,
    FeatureParams,
    ModelParams,
    PromotionParams,
    RegistryParams,
    RequestParams,
    TrainParams,
    ValidationParams,
)
from maas.config.kinds import baseline_names, gate_metric
from maas.errors import MaasError
from maas.pipeline.data.partitions import (
    add_label,
    read_partition,
    split_latest,
    task_partitions,
)
from maas.pipeline.data.windows import (
    TEST_FILE,
    TRAIN_FILE,
    clear_windows,
    read_lineage,
    read_window,
    write_windows,
)
from maas.pipeline.evaluation.result import Evaluation, log_evaluation
from maas.serving.inference import (
    MODEL_CONFIG_FILE,
    ONNX_FILE,
    WEIGHTS_FILE,
    OnnxModel,
    sha256_file,
)
from maas.tracking.runs import RunTracking

log = logging.getLogger(__name__)

TRAIN_SUMMARY_FILE = "train_summary.json"


@dataclass(frozen=True)
class IngestResult:
    written: list[str]
    partitions: list[str]


def ingest_data(data: DataParams, names: list[str] | None = None) -> IngestResult:
    """Fill `raw_dir` from the task's source when it holds no partitions yet (`names`: write
    these partitions). Existing partitions are never overwritten: the folder is the input new
    partitions arrive in."""
    from maas.pipeline.data.sources import ingest_partitions

    existing = task_partitions(data)
    written: list[Path] = []
    if names is not None or not existing:
        written = ingest_partitions(data, names)
    names = [p.name for p in task_partitions(data)]
    log.info("ingest: %d partition(s) written, %d available", len(written), len(names))
    return IngestResult([p.stem for p in written], names)


@dataclass(frozen=True)
class ValidateResult:
    status: str
    train_partitions: dict[str, str]  # name -> sha256
    test_partitions: dict[str, str]
    report_dir: str
    markdown: str


def validate_data(
    data: DataParams, validation: ValidationParams, tracking: RunTracking | None = None
) -> ValidateResult:
    """Validate the partitions this run uses; on success write labeled train/test windows.
    The test window is the newest partitions holding data.min_test_rows rows (and
    data.min_test_class_rows of each class): maas.pipeline.data.test_window.

    Raises:
        DataError: no scoreable test window leaves partitions to train on (nothing written).
        DataValidationError: a blocking expectation failed (nothing is written to processed_dir).
    """
    from maas.pipeline.data.test_window import split_by_size
    from maas.pipeline.validation.run import raise_for_blocking, validate_partitions

    clear_windows(data)  # a run that stops here leaves no windows for the next stage
    sized = split_by_size(task_partitions(data), data)
    train_parts, test_parts = sized.train, sized.test
    frames = [
        (p, sized.frames[p.name] if p.name in sized.frames else read_partition(p))
        for p in train_parts + test_parts
    ]
    train_hashes = {p.name: sha256_file(p.path) for p in train_parts}
    test_hashes = {p.name: sha256_file(p.path) for p in test_parts}
    report = validate_partitions(
        frames, validation, data, validation.reports_dir, train_hashes | test_hashes
    )
    if tracking is not None:
        tracking.log_artifacts(validation.reports_dir, "validation")
        tracking.set_tags({"validation_status": report.status})
    raise_for_blocking(report, validation.reports_dir)
    by_name = {p.name: frame for p, frame in frames}
    train_window, test_window = (
        add_label(
            pd.concat([by_name[p.name].assign(partition=p.name) for p in parts], ignore_index=True),
            data.label,
        )
        for parts in (train_parts, test_parts)
    )
    lineage = {
        "train_partitions": train_hashes,
        "test_partitions": test_hashes,
        "validation_status": report.status,
        "test_window": sized.window.describe(),
    }
    write_windows(data, train_window, test_window, lineage)
    log.info(
        "validate: %s (%d warnings; %d of %d partitions validated by an earlier run)",
        report.status,
        len(report.warnings),
        len(report.cached),
        len(report.partitions),
    )
    return ValidateResult(
        status=report.status,
        train_partitions=train_hashes,
        test_partitions=test_hashes,
        report_dir=str(validation.reports_dir),
        markdown=report.to_markdown(),
    )


@dataclass(frozen=True)
class TrainSummary:
    best_epoch: int
    epochs_run: int
    device: str
    samples_per_second: float
    resumed_from_epoch: int | None
    train_rows: int
    validation_rows: int
    validation_metric: str  # the gate's metric (promotion.metric, else the kind's score)
    validation_score: float
    history: list[dict[str, float]]
    estimated_seconds: float | None = None  # said before the first epoch (training.budget)
    # numeric_embeddings auto: each candidate's record (training.candidates); else empty
    candidates: list[dict[str, Any]] = field(default_factory=list)
    # multiclass: the decision rule's offsets on the class logits (empty: the plain argmax)
    class_bias: list[float] = field(default_factory=list)


def train_model(
    *,
    data: DataParams,
    features: FeatureParams,
    model: ModelParams,
    train: TrainParams,
    request: RequestParams,
    tracking: RunTracking | None = None,
    promotion: PromotionParams | None = None,
) -> TrainSummary:
    """Fit preprocessing on the training window, train, save weights/config/ONNX to models_dir
    (the preprocessing JSON carries the request spec the service is generated from). Epochs
    are chosen on the gate's metric (`promotion.metric`, else the kind's score), and so are a
    multiclass decision rule (training.imbalance) and `auto` embeddings (training.candidates)."""
    from maas.pipeline.training import distributed
    from maas.pipeline.training.candidates import candidate_metrics, candidate_models, choose
    from maas.pipeline.training.export import save_model
    from maas.pipeline.training.imbalance import decide_on_validation
    from maas.pipeline.training.job import train_candidate, validation_labels
    from maas.pipeline.training.prepare import prepare_training, training_fingerprint

    prepared = prepare_training(data, features, model, train, request)
    metric = gate_metric(data.label.kind, promotion.metric if promotion else None).name
    lineage, models = read_lineage(data), candidate_models(model)
    checkpoints = {  # each training job's, by its fingerprint
        m.numeric_embeddings.kind: train.checkpoint_dir
        / f"{training_fingerprint(features, m, train, data, lineage)}.pt"
        for m in models
    }

    epoch_logger = tracking.epoch_logger() if tracking is not None else None
    # Under `torchrun --nproc_per_node N`: N data-parallel processes (training.distributed).
    with distributed.session() as main:
        trained, candidates = choose(
            models,
            lambda m: train_candidate(
                prepared,
                m,
                train,
                checkpoints[m.numeric_embeddings.kind],
                metric=metric,
                epoch_logger=epoch_logger,
                show=main,
                # auto embeddings: each candidate's epochs under its own metric names
                prefix=f"{m.numeric_embeddings.kind}." if len(models) > 1 else "",
            ),
            validation_labels(prepared),
            metric,
            data.label.kind,
            log.info if main else lambda _: None,  # said once under torchrun
        )
    if epoch_logger is not None:
        epoch_logger.flush()
    result, prepared = trained.result, replace(prepared, config=trained.config)
    summary = TrainSummary(
        best_epoch=result.best_epoch,
        epochs_run=len(result.history),
        device=result.device,
        samples_per_second=result.samples_per_second,
        resumed_from_epoch=result.resumed_from_epoch,
        train_rows=len(prepared.fit_rows),
        validation_rows=len(prepared.val_rows),
        validation_metric=metric,
        validation_score=trained.candidate.validation_score,
        history=result.history,
        estimated_seconds=result.estimated_seconds,
        candidates=[c.to_dict() for c in candidates] if len(candidates) > 1 else [],
        class_bias=decide_on_validation(
            result.model, trained.predictions, prepared.validation.labels.numpy(), metric
        ),
    )
    if not main:  # another torchrun rank: it only trained; rank 0 writes, exports and logs
        return summary
    save_model(train.models_dir, result.model, prepared)
    (train.models_dir / TRAIN_SUMMARY_FILE).write_text(json.dumps(asdict(summary), indent=1))
    if tracking is not None:
        tracking.log_metrics(
            {
                "best_epoch": summary.best_epoch,
                "train_samples_per_second": summary.samples_per_second,
                f"best_val_{metric}": summary.validation_score,
                **candidate_metrics(candidates, metric),
            }
        )
        tracking.log_artifact(train.models_dir / TRAIN_SUMMARY_FILE, "training")
    for checkpoint in checkpoints.values():  # finished: the next run trains afresh
        checkpoint.unlink(missing_ok=True)
    log.info(
        "train: best epoch %d of %d on %s", result.best_epoch, len(result.history), result.device
    )
    return summary


def evaluate_model(
    *,
    data: DataParams,
    train: TrainParams,
    evaluate: EvaluateParams,
    promotion: PromotionParams,
    registry: RegistryParams | None,
    tracking: RunTracking | None = None,
) -> Evaluation:
    """Score the served graph on the test month next to baselines and the champion; decide.

    Baselines are fitted on the rows the network trained on: the training window without its
    latest `train.validation_fraction` (which only selected the network's epoch); `train.seed`
    seeds them. The model is read from `train.models_dir`.
    `registry=None` skips the champion (no registry configured).
    """
    from maas.pipeline.evaluation.champion import champion_score
    from maas.pipeline.evaluation.gate import decide_gate
    from maas.pipeline.evaluation.metrics import compute_metrics, fit_baselines
    from maas.pipeline.evaluation.plots import write_plots
    from maas.pipeline.training.export import check_onnx_parity, load_weights
    from maas.pipeline.training.model import Head, ModelConfig

    models_dir = train.models_dir
    test = read_window(data, TEST_FILE)
    train_window = read_window(data, TRAIN_FILE)
    lineage = read_lineage(data)
    labels = test["label"].to_numpy()
    kind, n_classes = data.label.kind, len(data.label.classes)

    served = OnnxModel.load(models_dir)
    cat, num = served.preprocessor.transform(test)
    config = ModelConfig.load(models_dir / MODEL_CONFIG_FILE)
    if config.head != kind:
        raise MaasError(
            f"{models_dir} holds a {config.head} model and the task is {kind}: "
            "train it again (`maas run`, or `maas stage train`)"
        )
    torch_model = load_weights(config, models_dir / WEIGHTS_FILE)
    parity = check_onnx_parity(
        torch_model,
        models_dir / ONNX_FILE,
        cat,
        num,
        evaluate.onnx_parity_tolerance,
        scale=Head.of(config).output_scale,
    )
    preds = served.predict(test)
    test_metrics = compute_metrics(labels, preds, kind)
    optional = served.preprocessor.optional_inputs
    absent = (
        compute_metrics(labels, served.predict(test.drop(columns=optional)), kind)
        if optional
        else None
    )
    fit_rows, _ = split_latest(train_window, train.validation_fraction, data.time)
    train_cat, train_num = served.preprocessor.transform(fit_rows)
    baseline_preds = fit_baselines(
        baseline_names(list(evaluate.baselines), kind),
        train_cat,
        train_num,
        fit_rows["label"].to_numpy(),
        cat,
        num,
        train.seed,
        kind,
        n_classes,
    )
    baselines = {name: compute_metrics(labels, p, kind) for name, p in baseline_preds.items()}
    test_partitions = list(lineage["test_partitions"])  # in the task's order (95 before 100)
    classes = list(data.label.classes)
    champion = (
        champion_score(
            registry,
            test,
            test_partitions,
            kind,
            classes,
            verdict_key_file=promotion.verdict_key_file,
        )
        if registry
        else None
    )
    gate = decide_gate(
        test_metrics,
        baselines,
        champion,
        lineage["validation_status"],
        promotion,
        optional_absent=absent,
        kind=kind,
        positive_rate=float(labels.mean()) if kind == "binary" and len(labels) else None,
    )
    write_plots(labels, preds, evaluate.plots_dir, kind, classes)
    metric = gate_metric(kind, promotion.metric)
    metrics = Evaluation(
        kind=kind,
        classes=classes,
        gate_metric=metric.name,
        test=test_metrics,
        test_optional_absent=absent,
        optional_inputs=optional,
        baselines=baselines,
        champion=champion,
        gate=gate,
        test_rows=len(test),
        test_partitions=test_partitions,
        onnx_parity_max_abs_diff=parity,
    )
    evaluate.metrics_path.parent.mkdir(parents=True, exist_ok=True)
    evaluate.metrics_path.write_text(json.dumps(metrics.to_json(), indent=1))
    if tracking is not None:
        log_evaluation(tracking, metrics, evaluate)
    log.info(
        "evaluate: %s %.4f, gate passed=%s promoted=%s",
        metric.label,
        test_metrics[metric.name],
        gate.passed,
        gate.promoted,
    )
    return metrics
