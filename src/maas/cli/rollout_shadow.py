"""`maas rollout shadow`: any registered version replays the champion's recent served requests
(maas.operate.shadow), before or without a rollout: disagreement, quality on the labeled rows,
scoring time, and the shadow step's checks."""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import asdict
from typing import Annotated, Any

import typer

from maas.cli.common import JsonOption, Project, handled, out, with_project

rollout_app = typer.Typer(help="Progressive delivery: shadow, canary, promotion.")

DURATION = re.compile(r"^(\d+)([mhd])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """An ISO 8601 time (UTC when it names no zone) or a duration back from now (30m, 24h,
    7d)."""
    found = DURATION.match(text.strip())
    if found:
        since = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(
            **{UNITS[found.group(2)]: int(found.group(1))}
        )
        return since
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither an ISO time (2026-12-01T08:00Z) nor a duration (30m, 24h, 7d)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@handled
@with_project
def shadow(
    project: Project,
    version: Annotated[str, typer.Option(help="The candidate: a version number or an alias.")],
    since: Annotated[
        str | None,
        typer.Option(help="Replay requests served since: an ISO time or a duration (24h, 7d)."),
    ] = None,
    max_requests: Annotated[
        int | None,
        typer.Option(help="Replay at most this many of the newest requests (default 2000).", min=1),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Replay the champion's recent served requests with VERSION (no client sees its answers)
    and compare: disagreement, quality where labels have arrived, scoring time per record;
    judged with the task's deploy.rollout thresholds, as a rollout's shadow step is."""
    import json

    from maas.errors import RegistryError
    from maas.operate.shadow import MAX_REQUESTS, checks_of, shadow_report
    from maas.tracking.registry import CHAMPION, get_alias_version
    from maas.tracking.store import connect

    params = project.load()
    client = connect(params.registry)
    model = params.registry.model_name
    champion = get_alias_version(client, model, CHAMPION)
    if champion is None:
        raise RegistryError(f"model {model!r} has no champion: nothing to replay")
    report = shadow_report(
        params,
        client,
        str(champion.version),
        version,
        since=parse_since(since) if since else None,
        max_requests=max_requests or MAX_REQUESTS,
        alpha=params.deploy.rollout.alpha,
    )
    checks = checks_of(report, **params.deploy.rollout.shadow_thresholds())  # the task's
    if as_json:
        body = {**report.to_dict(), "checks": [asdict(check) for check in checks]}
        out.print_json(json.dumps(_finite(body)))
        return
    out.print(
        f"{model}: v{report.candidate} replayed {report.requests} requests "
        f"({report.records} records) served by the champion v{report.champion}"
    )
    for check in checks:
        mark = {True: "pass", False: "FAIL", None: "wait"}[check.passed]
        out.print(f"  {mark:4}  {check.name}: {check.reason}", markup=False)
    for note in report.notes:
        out.print(f"  note: {note}", markup=False)


def _finite(value: Any) -> Any:
    """JSON has no NaN: an undefined number (an interval not computed yet) is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


rollout_app.command("shadow")(shadow)
