"""Where a rollout's candidate runs: its validated image as containers beside the champion's,
ready and answering with its version, but not routed (the gateway's canary weights route it,
`maas.operate.gateway_canary`); and what each version's services measured (`/metrics`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from maas.config import Params
from maas.operate.rollout_analysis import add_histograms, parse_histogram
from maas.release import containers

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from maas.operate.targets import LocalTarget

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Started:
    """A candidate's replicas: ready, answering with its version, not routed yet."""

    containers: list[str]
    ports: list[int]
    image: str
    image_id: str


class Fleet(Protocol):
    def start(self, version: str) -> Started: ...
    def remove(self, names: list[str]) -> None: ...
    def running(self, names: list[str]) -> bool: ...
    def latency(self, ports: list[int]) -> dict[str, float]: ...


def scrape_latency(ports: list[int], timeout_s: float = 5) -> dict[str, float]:
    """The `/predict` duration histogram of the services on `ports` (loopback), summed; a
    service that does not answer adds nothing (its errors show at the gateway)."""
    import httpx

    found: list[Mapping[str, float]] = []
    for port in ports:
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s)
            response.raise_for_status()
        except httpx.HTTPError as error:
            log.debug("no /metrics on port %d: %s", port, error)
            continue
        found.append(parse_histogram(response.text))
    return add_histograms(found)


class LocalFleet:
    """The local target's containers: the candidate's image packaged and infra-validated as
    the release flow does, then started as the target starts a new version's replicas."""

    def __init__(self, params: Params, client: MlflowClient, target: LocalTarget) -> None:
        self.params, self.client, self.target = params, client, target

    def start(self, version: str) -> Started:
        from maas.release.packaging import package_version

        params = self.params
        packaged = package_version(
            self.client,
            params.registry,
            params.packaging,
            params.serving,
            version,
            verdict_key_file=params.promotion.verdict_key_file,
        )
        image, image_id = packaged.validated_image()
        model = params.registry.model_name
        started: list[tuple[str, int]] = []
        self.target.ensure_gateway()
        try:
            for _ in range(self.target.replicas):
                # the target's own start: the same container settings, checks and clean-up
                started.append(self.target._start(model, version, image, image_id))
        except BaseException:
            self.remove([name for name, _ in started])
            raise
        return Started([n for n, _ in started], [p for _, p in started], image, image_id)

    def remove(self, names: list[str]) -> None:
        for name in names:
            containers.remove_container(self.target.runtime, name)

    def running(self, names: list[str]) -> bool:
        return all(containers.container_running(self.target.runtime, name) for name in names)

    def latency(self, ports: list[int]) -> dict[str, float]:
        return scrape_latency(ports)
