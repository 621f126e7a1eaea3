"""Issue 27 item 5 (SSRF through MLflow webhooks), against a real `mlflow server` started by
`maas.tracking.server.start_server` on loopback: a registry client aims a webhook at a
loopback-only service of the test's own and asks `test_webhook` for its answer. Refused (403,
the rule named), and the service is never reached; the controller's own webhook still works.
With `auth` (team mode), an anonymous client gets 401 and the owner (the admin) works.
"""

from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from maas.net import free_port
from maas.tracking.registry import get_alias_version
from maas.tracking.server import receiver_url, register_webhook, start_server, wait_healthy
from maas.tracking.server_app import RULE

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SECRET_BODY = "internal-only: the database password is hunter2"
EVENTS: list = ["model_version_alias.created"]


@contextlib.contextmanager
def loopback_service(port: int, body: str):
    """An HTTP service on 127.0.0.1 answering every POST with `body`; yields the paths hit."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            hits.append(self.path)
            payload = body.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hits
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def mlflow_server(params, root: Path, *, auth: bool = False):
    log = root / "mlflow-server.log"
    process = start_server(params, log, f"sqlite:///{root / 'mlflow.db'}", auth=auth)
    url = f"http://{params.deploy.ui_address}"
    try:
        wait_healthy(url, process, timeout_s=120)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def team_params(small_params, root: Path):
    deploy = small_params.deploy.model_copy(
        update={
            "ui_address": f"127.0.0.1:{free_port()}",
            "webhook_listen": f"127.0.0.1:{free_port()}",
            "webhook_secret_file": root / "state" / "webhook.secret",
        }
    )
    return small_params.model_copy(update={"deploy": deploy})


def refused(error: MlflowException) -> bool:
    return RULE in str(error) and error.get_http_status_code() == 403


def test_a_webhook_to_an_internal_service_is_refused_and_its_answer_never_read(
    tmp_path, small_params, monkeypatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    params = team_params(small_params, tmp_path)
    internal = f"http://127.0.0.1:{free_port()}/admin/secrets"
    receiver_port = int(params.deploy.webhook_listen.rsplit(":", 1)[1])
    with (
        loopback_service(int(internal.split(":")[2].split("/")[0]), SECRET_BODY) as internal_hits,
        loopback_service(receiver_port, "ok") as receiver_hits,
        mlflow_server(params, tmp_path) as url,
    ):
        client = MlflowClient(tracking_uri=url, registry_uri=url)
        # The attack: create a webhook to the internal service, then read it via test_webhook.
        with pytest.raises(MlflowException) as created:
            client.create_webhook("probe", internal, events=EVENTS)
        assert refused(created.value), created.value
        # Spellings of the receiver with something else in them are not the receiver.
        for sneaky in (
            f"http://user@{params.deploy.webhook_listen}/webhook",
            f"{receiver_url(params)}?next={internal}",
            f"http://{params.deploy.webhook_listen}/webhook/../admin",
        ):
            with pytest.raises(MlflowException) as other:
                client.create_webhook("probe", sneaky, events=EVENTS)
            assert refused(other.value), sneaky

        # The controller's own webhook: created, tested (it reaches the receiver) ...
        hook = register_webhook(url, params)
        assert hook.url == receiver_url(params)
        result = client.test_webhook(hook.webhook_id)
        assert result.success and result.response_body == "ok"
        assert receiver_hits == ["/webhook"]
        # ... but never re-aimed at the internal service.
        with pytest.raises(MlflowException) as updated:
            client.update_webhook(hook.webhook_id, url=internal)
        assert refused(updated.value), updated.value
        double_encoded = json.dumps(json.dumps({"url": internal}))  # MLflow decodes it twice
        sneaked = httpx.patch(
            f"{url}/api/2.0/mlflow/webhooks/{hook.webhook_id}",
            content=double_encoded,
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
        assert sneaked.status_code == 403 and RULE in sneaked.json()["message"], sneaked.text
        # A webhook stored before the rule (written to the database directly) is not tested.
        from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

        monkeypatch.setenv("MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY", fernet_of(params))
        monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "http,https")
        monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true")
        old = SqlAlchemyStore(f"sqlite:///{tmp_path / 'mlflow.db'}").create_webhook(
            name="old", url=internal, events=[_event()]
        )
        with pytest.raises(MlflowException) as tested:
            client.test_webhook(old.webhook_id)
        assert refused(tested.value), tested.value
        assert SECRET_BODY not in str(tested.value)
        assert client.get_webhook(hook.webhook_id).url == receiver_url(params)
    assert internal_hits == []  # nothing ever reached the internal service


def fernet_of(params) -> str:
    return (params.deploy.webhook_secret_file.with_name("webhook.fernet")).read_text().strip()


def _event():
    from mlflow.entities.webhook import WebhookAction, WebhookEntity, WebhookEvent

    return WebhookEvent(WebhookEntity.MODEL_VERSION_ALIAS, WebhookAction.CREATED)


def test_team_mode_server_refuses_anonymous_clients_and_serves_the_admin(
    tmp_path, small_params, monkeypatch
) -> None:
    """`maas ui --auth`: MLflow's basic-auth app, the owner's client credentials the admin's."""
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "owner")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "owner-password-1234")
    params = team_params(small_params, tmp_path)
    with mlflow_server(params, tmp_path, auth=True) as url:
        search = f"{url}/api/2.0/mlflow/registered-models/search"
        owner = ("owner", "owner-password-1234")
        assert httpx.get(search, timeout=60).status_code == 401  # anonymous
        assert httpx.get(search, auth=("owner", "wrong"), timeout=60).status_code == 401
        assert httpx.get(search, auth=owner, timeout=60).status_code == 200
        hook = register_webhook(url, params)  # as the admin, by environment
        assert hook.url == receiver_url(params)
        with pytest.raises(MlflowException) as created:  # the rule holds for admins too
            MlflowClient(url, registry_uri=url).create_webhook(
                "probe", "http://127.0.0.1:1/x", events=EVENTS
            )
        assert refused(created.value), created.value
        # A non-admin asking for a model that does not exist yet gets 403 from MLflow, not
        # 404: the pipeline and the controller must still read it as "no champion yet".
        made = httpx.post(
            f"{url}/api/2.0/mlflow/users/create",
            json={"username": "pipeline", "password": "pipeline-password-1"},
            auth=owner,
            timeout=60,
        )
        assert made.status_code == 200, made.text
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "pipeline")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pipeline-password-1")
        client = MlflowClient(url, registry_uri=url)
        assert get_alias_version(client, "not-yet-registered", "champion") is None
        client.create_registered_model("not-yet-registered")
        assert get_alias_version(client, "not-yet-registered", "champion") is None
    assert "owner-password-1234" not in (tmp_path / "state" / "mlflow-auth.ini").read_text()
    assert (tmp_path / "state" / "mlflow-auth.ini").stat().st_mode & 0o077 == 0
