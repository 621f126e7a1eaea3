"""The `mlflow server --app-name maas` app: MLflow's own, with webhook targets limited to the
controller's receiver (issue 27 item 5).

The controller's receiver listens on loopback or a private network, so the server runs with
`MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true`, and MLflow 3.17 has no per-host allowlist: any
webhook creator could point one at an internal service and read its answer through
`test_webhook`. This app refuses (403, a JSON error naming the rule) every webhook create,
update or test whose URL is not one of $MAAS_WEBHOOK_ALLOWED_URLS (comma-separated; set by
`maas.tracking.server.server_environment` to the controller's receiver).

`create_app` wraps MLflow's app (`mlflow server` without --app-name), `create_auth_app` its
`basic-auth` app (team mode: users, permissions; only admins manage webhooks). Both are
factories that uvicorn calls in the worker (`mlflow server` passes --factory).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any
from urllib.parse import urlsplit

ALLOWED_URLS_ENV = "MAAS_WEBHOOK_ALLOWED_URLS"
RULE = "webhook targets are limited to the maas controller's receiver"
# create: POST .../mlflow/webhooks; update: PATCH .../webhooks/<id>; test: POST .../<id>/test
_WEBHOOKS = re.compile(r"/mlflow/webhooks(?:/(?P<id>[^/]+))?(?P<test>/test)?/?$")


def normalized(url: str) -> str:
    """scheme://host:port/path, lower-cased host and scheme, default port made explicit: two
    spellings of one receiver compare equal, and nothing else does."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:  # a port that is not a number
        return ""
    host = (parts.hostname or "").lower()
    if parts.username or parts.password or parts.query or parts.fragment:
        return ""  # never equal to an allowed receiver URL
    return f"{scheme}://{host}:{port}{parts.path or '/'}"


def allowed_urls(environ: dict[str, str] | None = None) -> frozenset[str]:
    value = (environ if environ is not None else os.environ).get(ALLOWED_URLS_ENV, "")
    return frozenset(normalized(url) for url in value.split(",") if url.strip())


def refusal(url: str | None) -> str | None:
    """Why a webhook to `url` is refused (None: allowed)."""
    allowed = allowed_urls()
    if url is not None and normalized(url) in allowed and normalized(url):
        return None
    return f"{RULE}: {url!r} is not one of ${ALLOWED_URLS_ENV} ({', '.join(sorted(allowed))})"


def _requested_url(webhook_id: str | None, test: bool) -> tuple[bool, str | None]:
    """(whether this request names a target to check, the URL it would reach)."""
    from flask import request

    if test:  # test_webhook reaches the stored URL
        from mlflow.server.handlers import _get_model_registry_store

        assert webhook_id is not None
        return True, _get_model_registry_store().get_webhook(webhook_id=webhook_id).url
    body = request.get_json(silent=True, force=True) or {}
    if isinstance(body, str):  # MLflow decodes a double-encoded body (old clients) again
        try:
            body = json.loads(body)
        except ValueError:
            body = {}
    url = body.get("url") if isinstance(body, dict) else None
    if webhook_id is None:  # create: a URL is required
        return True, url if isinstance(url, str) else None
    if url is None:  # update without a new URL: the stored one stays (it passed this check)
        return False, None
    return True, url if isinstance(url, str) else None


def _check_webhook_target() -> Any:
    """A Flask before_request hook: the 403 for a webhook aimed elsewhere, else None."""
    from flask import jsonify, request

    match = _WEBHOOKS.search(request.path)
    if match is None or request.method not in {"POST", "PATCH"}:
        return None
    webhook_id, test = match.group("id"), match.group("test") is not None
    if request.method == "POST" and webhook_id is not None and not test:
        return None  # no such route; MLflow answers it
    checked, url = _requested_url(webhook_id, test)
    reason = refusal(url) if checked else None
    if reason is None:
        return None
    response = jsonify({"error_code": "PERMISSION_DENIED", "message": reason})
    response.status_code = 403
    return response


def _guarded_flask_app() -> Any:
    from mlflow.server import app

    if _check_webhook_target not in app.before_request_funcs.setdefault(None, []):
        app.before_request(_check_webhook_target)
    return app


def create_app() -> Any:
    """MLflow's server app (FastAPI around Flask under uvicorn), webhook targets limited."""
    from mlflow.environment_variables import _MLFLOW_SGI_NAME

    flask_app = _guarded_flask_app()
    if _MLFLOW_SGI_NAME.get() == "uvicorn":
        from mlflow.server.fastapi_app import app  # the same Flask app, mounted

        return app
    return flask_app


def create_auth_app() -> Any:
    """MLflow's basic-auth app (its users and permissions), webhook targets limited. Its own
    before_request hook (authentication, admin-only webhooks) runs before this one."""
    from mlflow.server import app
    from mlflow.server.auth import create_app as create_basic_auth_app

    guarded = create_basic_auth_app(app)  # registers authentication's hooks first
    _guarded_flask_app()
    return guarded
