"""Models whose names differ only in case (or in `.` vs `_`) never share an image, a container
name prefix or a Kubernetes manifest."""

from __future__ import annotations

from pathlib import Path

from maas.naming import slug
from maas.operate.kubernetes import KubernetesTarget
from maas.release.images import image_name


def test_names_that_lower_case_alike_stay_apart(small_params, tmp_path: Path) -> None:
    assert slug("flight-delay") == "flight-delay"  # a lower-case name is kept as it is
    names = ["Flights", "flights", "FLIGHTS", "a.b", "a_b"]
    slugs = [slug(name) for name in names]
    assert len(set(slugs)) == len(names)
    assert all(
        s == s.lower() and set(s) <= set("abcdefghijklmnopqrstuvwxyz0123456789-") for s in slugs
    )
    packaging = small_params.packaging
    assert image_name(packaging, "Flights", "v1") != image_name(packaging, "flights", "v1")
    target = KubernetesTarget(tmp_path / "state", tmp_path / "k8s")
    for name in ("Flights", "flights"):
        target.deploy(name, "1", f"maas-{slug(name)}:v1", "")
    assert len(list((tmp_path / "k8s").glob("maas-*.yaml"))) == 3  # two models and the Ingress
