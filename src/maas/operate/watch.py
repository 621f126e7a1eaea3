"""`maas watch`: the promotion controller's loop over every task's model.

A pass per model now, on every MLflow alias webhook, and every interval
(`maas.operate.controller.reconcile_once` does one pass), until Ctrl-C or SIGTERM. Between
passes, while every model is in sync, the newest versions that passed the gate are packaged
ahead of a promotion (`maas.operate.prepare`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence
from typing import Any

from maas.config import Params
from maas.errors import LockBusy
from maas.operate.controller import (
    Outcome,
    Release,
    controller_lock,
    reconcile_once,
    sweep_orphans,
)
from maas.operate.prepare import prepare_once
from maas.operate.targets import make_target
from maas.tracking.registry import CHAMPION
from maas.tracking.store import connect

log = logging.getLogger(__name__)

IDLE = ("in_sync", "no_champion")  # a model in these states may have versions packaged ahead


def watch(
    tasks: Sequence[tuple[Params, Release]],
    interval_s: float,
    once: bool = False,
    stop: threading.Event | None = None,
) -> None:
    """Reconcile every task's model now, on every MLflow alias webhook, and every
    `interval_s`, until Ctrl-C or `stop` is set (SIGTERM: `maas.cli.common.stop_on_sigterm`).
    The tasks share the deploy section (one state folder, one stable address)."""
    stop = stop or threading.Event()
    first = tasks[0][0]
    targets = [make_target(params) for params, _ in tasks]
    names = [params.registry.model_name for params, _ in tasks]
    wake = threading.Event()
    retry: set[tuple[str, str]] = set()  # (model, version) the alias was set on again
    retry_lock = threading.Lock()
    server = None
    last: dict[str, Outcome] = {}
    tried: dict[str, set[str]] = {name: set() for name in names}  # packaged ahead, or tried

    def on_alias_event(event: dict[str, Any]) -> None:  # the receiver's thread
        data = event.get("data") or {}
        if event.get("action") == "created" and data.get("alias") == CHAMPION:
            with retry_lock:
                retry.add((str(data.get("name")), str(data.get("version"))))
        wake.set()

    if first.deploy.webhook_listen and not once:
        from maas.operate.receiver import serve_webhooks
        from maas.tracking.webhooks import load_or_create_secret

        secret = load_or_create_secret(first.deploy.webhook_secret_file)
        server = serve_webhooks(
            first.deploy.webhook_listen,
            secret,
            names,
            on_alias_event,
            deadline_s=first.deploy.webhook_deadline_s,
            max_connections=first.deploy.webhook_max_connections,
        )
        log.info("webhooks: POST http://%s/webhook", first.deploy.webhook_listen)
    with contextlib.suppress(LockBusy), controller_lock(first.deploy.state_dir, wait=False):
        for target, name in zip(targets, names, strict=True):
            sweep_orphans(target, name)  # what a killed controller left
    try:
        while not stop.is_set():
            wake.clear()
            with retry_lock:
                asked = frozenset(retry)
                retry.clear()
            for (params, release), target, name in zip(tasks, targets, names, strict=True):
                if stop.is_set():
                    return
                versions = frozenset(version for model, version in asked if model == name)
                try:
                    client = connect(params.registry)
                    outcome = reconcile_once(params, client, target, release, versions)
                    # quiet while nothing changes: one line per new state, not one per pass,
                    # and one for each pass a webhook delivery asked for
                    changed = outcome != last.get(name) or versions
                    log.log(
                        logging.INFO if changed else logging.DEBUG,
                        "reconcile %s: %s v%s %s%s",
                        name,
                        outcome.action,
                        outcome.version,
                        outcome.detail,
                        f" (asked by a delivery for v{', v'.join(sorted(versions))})"
                        if versions
                        else "",
                    )
                    last[name] = outcome
                except Exception as error:  # registry unreachable: keep serving, try later
                    log.warning("reconcile %s failed: %s", name, error)
            if once or stop.is_set():
                return
            for params, _ in tasks:
                name = params.registry.model_name
                if wake.is_set() or stop.is_set():  # a move to serve first
                    break
                if last.get(name) is None or last[name].action not in IDLE:
                    continue
                try:
                    prepare_once(params, connect(params.registry), tried[name])
                except Exception as error:  # registry unreachable: try on a later pass
                    log.warning("packaging ahead for %s failed: %s", name, error)
            wake.wait(interval_s)
    finally:
        if server is not None:
            server.shutdown()
