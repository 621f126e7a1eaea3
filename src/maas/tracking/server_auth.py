"""`maas ui --auth` (team mode): MLflow's own authentication, the `basic-auth` app under maas's
webhook rule (`mlflow server --app-name maas-auth`).

Every request needs a user (anonymous: 401); users read everything (`default_permission =
READ`), edit what they created (MLflow makes the creator MANAGE its experiments and models) or
were granted (`/api/3.0/mlflow/users/permissions/grant`), and only admins manage users and
webhooks. The owner who runs `maas ui --auth` is the admin: $MLFLOW_TRACKING_USERNAME and
$MLFLOW_TRACKING_PASSWORD (the same variables every MLflow client reads) become the admin's on
the first start, by environment, never on a command line. The user store, the ini and the
Flask session key live next to the webhook secret (`.maas/`), owner-only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from maas.errors import TrackingServerError
from maas.files import read_or_create_secret, replacing

USERNAME_ENV = "MLFLOW_TRACKING_USERNAME"
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"
APP_NAME = "maas-auth"


@dataclass(frozen=True)
class AuthFiles:
    """Where team mode keeps MLflow's user store, its ini and the Flask session key."""

    folder: Path

    @property
    def config(self) -> Path:
        return self.folder / "mlflow-auth.ini"

    @property
    def users(self) -> Path:
        return self.folder / "mlflow-users.db"

    @property
    def session_key(self) -> Path:
        return self.folder / "mlflow-flask.key"


def owner_credentials(environ: dict[str, str] | None = None) -> tuple[str, str]:
    """(username, password) of the admin: the owner's MLflow client credentials."""
    env = os.environ if environ is None else environ
    username, password = env.get(USERNAME_ENV, "").strip(), env.get(PASSWORD_ENV, "")
    if not username or not password:
        raise TrackingServerError(
            f"maas ui --auth: set ${USERNAME_ENV} and ${PASSWORD_ENV} (the MLflow admin, "
            "created on the first start; clients use the same variables)"
        )
    return username, password


def write_config(files: AuthFiles, username: str) -> Path:
    """The basic-auth ini (no password in it: the admin's comes by environment), 0600."""
    files.folder.mkdir(parents=True, exist_ok=True)
    text = (
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{files.users.resolve()}\n"
        f"admin_username = {username}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # a password is checked (scrypt, ~0.1 s) once a minute per user, not on every call of a
        # training run; one worker, so a changed password takes effect at once
        "auth_cache_ttl_seconds = 60\n"
    )
    with replacing(files.config) as partial:
        partial.write_text(text)
        partial.chmod(0o600)
    return files.config


def auth_environment(files: AuthFiles, environ: dict[str, str] | None = None) -> dict[str, str]:
    """What the server needs for the basic-auth app, on top of its other environment."""
    username, password = owner_credentials(environ)
    return {
        "MLFLOW_AUTH_CONFIG_PATH": str(write_config(files, username)),
        "MLFLOW_AUTH_ADMIN_USERNAME": username,
        "MLFLOW_AUTH_ADMIN_PASSWORD": password,
        # a static key: sessions and CSRF work across restarts
        "MLFLOW_FLASK_SERVER_SECRET_KEY": read_or_create_secret(
            files.session_key, env="MLFLOW_FLASK_SERVER_SECRET_KEY"
        ),
    }
