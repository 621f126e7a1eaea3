"""The client host of tests/e2e/test_multi_host.py: moves `champion` with the MLflow API and
sends predictions to the gateway, by address only.

    python -m tests.e2e.multi_host_client REGISTRY_URL MODEL GATEWAY_URL FIRST SECOND

makes FIRST the champion and waits until the gateway answers with it; then, while one client
thread posts predictions without pause, makes SECOND the champion, waits until it answers and
keeps sending for 2 s more. Prints one JSON line: the outcomes counted by what answered (a
version, `http <status>` or a transport error) and the seconds each version took to serve.
"""

from __future__ import annotations

import json
import sys
import time

from mlflow import MlflowClient

from tests.e2e.helpers import Load, wait_for_version


def main(registry: str, model: str, gateway: str, first: str, second: str) -> dict:
    client = MlflowClient(tracking_uri=registry, registry_uri=registry)
    client.set_registered_model_alias(model, "champion", first)
    first_s = wait_for_version(gateway, first, timeout=400)
    with Load(gateway) as load:
        time.sleep(2)
        client.set_registered_model_alias(model, "champion", second)
        second_s = wait_for_version(gateway, second, timeout=400)
        time.sleep(2)
        outcomes = load.stop()
    return {"outcomes": outcomes, "first_s": first_s, "second_s": second_s}


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:6])))
