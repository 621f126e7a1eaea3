"""Every error a user can act on, in one tree; the CLI prints each as one line. The serving
package keeps its own root (`maas.serving.errors`): it imports nothing else of maas.

    MaasError
    ├── ConfigError            params.yaml, a task file or an override is invalid
    ├── DataError              a partition is missing or unreadable, or does not fit the task
    ├── MissingStageOutput     an earlier stage has not run (also a FileNotFoundError)
    ├── RunBusy                another pipeline run holds the same working files
    ├── DataValidationError    a blocking expectation failed
    ├── TrainingError          training cannot run as configured
    ├── ExportError            the ONNX graph does not reproduce the torch model
    ├── RegistryError          the registry is unreachable, or a version or alias is missing
    ├── ServingCodeError       a version's recorded serving code is missing or altered
    ├── VerdictKeyError        the signing key cannot be used
    ├── UntrustedVersionError  a version's signed verdict does not verify: nothing of it runs
    ├── ApprovalError          a deploy override cannot be signed for this version
    ├── TrackingServerError    the MLflow server did not start
    ├── WebhookSecretError     the webhook secret is blank
    ├── PackagingError         a version cannot be packaged
    ├── ContainerError         a container tool is missing or a build/run failed
    ├── DeployError            a version could not be deployed (the previous one serves on)
    ├── RollbackError          there is nothing to roll back to
    ├── LockBusy               another controller pass holds the lock
    ├── ScheduleError          no Prefect server to schedule on
    ├── AuditError             the audit trail cannot be written (also an OSError)
    ├── AlertSecretError       the alert webhook's key is blank
    ├── ScoringError           a batch scoring job cannot start or its input is unreadable
    └── SparkError             validation on Spark: no master answers, or Spark cannot start
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol


class MaasError(RuntimeError):
    """Something the user can fix (bad data, a missing file, an unreachable server, a refused
    version); the message names what is wrong and what to do."""


class Described(Protocol):
    """What a blocking failure offers its error: one line naming the check and the column."""

    def describe(self) -> str: ...


class ConfigError(MaasError, ValueError):
    """params.yaml, a task file or an override is invalid; the message names the key."""


class DataError(MaasError):
    """A partition is missing, misnamed or unreadable, or the data does not fit the task; the
    message names the file or the column."""


class MissingStageOutput(MaasError, FileNotFoundError):
    """A stage's input is not there: an earlier stage has not run (the message says which)."""


class RunBusy(MaasError):
    """Another pipeline run holds the same working files."""


class DataValidationError(MaasError):
    """A blocking expectation failed; the message names each expectation and column."""

    def __init__(self, failures: Sequence[Described], report_dir: Path | None = None):
        self.failures = failures
        lines = [f"data validation failed: {len(failures)} blocking expectation(s)"]
        lines += [f"  - {failure.describe()}" for failure in failures]
        if report_dir is not None:
            lines.append(f"report: {report_dir}")
        super().__init__("\n".join(lines))


class TrainingError(MaasError):
    """Training cannot run as configured (e.g. CUDA forced on a machine without it)."""


class ExportError(MaasError):
    """The ONNX graph does not reproduce the torch model; nothing may be registered."""


class RegistryError(MaasError):
    """The registry is unreachable or a version/alias does not exist; the message says which."""


class ServingCodeError(MaasError):
    """A version's recorded serving code is missing or does not match its digest."""


class VerdictKeyError(MaasError):
    """The signing key cannot be used (blank)."""


class UntrustedVersionError(MaasError):
    """A version's signed gate verdict does not verify (unsigned, or its tags or digests changed
    since): nothing recorded with it is imported or run on this host."""


class ApprovalError(MaasError):
    """A deploy override cannot be signed: the version's verdict itself does not verify (an
    approval covers a failed check, never altered artifacts or code)."""


class TrackingServerError(MaasError):
    """The MLflow server did not start or the webhook could not be registered."""


class WebhookSecretError(MaasError):
    """The webhook secret is empty: an HMAC with an empty key authenticates nobody."""


class PackagingError(MaasError):
    """A version cannot be packaged; the message says which and why."""


class ContainerError(MaasError):
    """A container tool is missing or a build/run failed; the message says which and why."""


class DeployError(MaasError):
    """A version could not be deployed; the previous one keeps serving."""


class RollbackError(MaasError):
    """There is nothing to roll back to."""


class LockBusy(MaasError):
    """Another pass holds the lock (and wait=False)."""


class ScheduleError(MaasError):
    """No Prefect server to schedule on."""


class AuditError(MaasError, OSError):
    """The local audit trail cannot be written (disk full, read-only); nothing half-written."""


class AlertSecretError(MaasError):
    """The alert webhook's HMAC key is blank."""


class ScoringError(MaasError):
    """A batch scoring job cannot run as asked (input, output or version); nothing written."""


class SparkError(MaasError):
    """Validation on Spark cannot run: the master (validation.spark_master) does not answer,
    or Spark does not start here (no Java, no pyspark); the message names the setting."""
