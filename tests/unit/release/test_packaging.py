"""Packaging decisions that need no container: backends, build options, names, mirrors."""

from __future__ import annotations

from pathlib import Path

import pytest

from maas.release import base_image, containers
from maas.release.bento import bento_version, service_args
from maas.release.images import build_options, image_name


def test_no_container_tool_means_no_backend_and_says_why(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    backend, reasons = containers.select_backend("auto")
    assert backend is None
    assert reasons == [f"{name} is not installed" for name in containers.BACKENDS]
    assert containers.select_backend("podman") == (None, ["podman is not installed"])


def test_docker_cli_without_daemon_is_not_a_backend(monkeypatch, tmp_path: Path) -> None:
    """A docker CLI whose `docker info` cannot reach a daemon (what a machine without Docker's
    engine has) is refused with Docker's own words; one that answers is accepted."""
    docker = tmp_path / "docker"
    docker.write_text(
        "#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
        "Is the docker daemon running?' >&2\nexit 1\n"
    )
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    problem = containers.backend_problem("docker")
    assert problem is not None and problem.startswith("`docker info` failed")
    assert "Is the docker daemon running?" in problem
    docker.write_text("#!/bin/sh\necho 'Server Version: 28.2.2'\n")
    assert containers.backend_problem("docker") is None


def test_runtime_for_buildah_is_podman(monkeypatch, tmp_path: Path) -> None:
    assert containers.runtime_for("docker") == "docker"
    monkeypatch.setenv("PATH", str(tmp_path))
    assert containers.runtime_for("buildah") is None  # buildah builds; something must run it


def test_ca_bundle_is_mounted_only_when_present(params, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("cert")
    packaging = params.packaging.model_copy(
        update={"ca_bundle": bundle, "build_options": {"volume": "/a:/b", "network": "host"}}
    )
    options = build_options(packaging)
    assert options["volume"] == ["/a:/b", f"{bundle}:{containers.CA_BUNDLE_IN_IMAGE}:ro"]
    assert options["network"] == "host"
    absent = packaging.model_copy(update={"ca_bundle": tmp_path / "none.pem", "build_options": {}})
    assert build_options(absent) == {}
    assert build_options(packaging.model_copy(update={"ca_bundle": None})) == {
        "volume": ["/a:/b"],
        "network": "host",
    }


def test_bento_version_is_a_digest_of_its_inputs(params) -> None:
    args = service_args("flight-delay:v3", params.packaging, params.serving)
    code = "c" * 64  # the digest of the serving code recorded with the version
    digests = {"model.onnx": "a" * 64}
    first = bento_version("3", code, args, digests)
    assert first == bento_version("3", code, args, digests)  # same inputs: reused
    assert first.startswith("v3-")
    other = service_args(
        "flight-delay:v3", params.packaging, params.serving.model_copy(update={"max_records": 10})
    )
    assert bento_version("3", code, other, digests) != first
    assert bento_version("3", code, args, {"model.onnx": "b" * 64}) != first
    assert bento_version("3", "d" * 64, args, digests) != first  # other serving code
    assert image_name(params.packaging, "flight-delay", "v3-0a1b") == "maas-flight-delay:v3-0a1b"
    mixed = image_name(params.packaging, "Flight-Delay", "v3-0a1b")  # another registered model
    assert mixed.startswith("maas-flight-delay-") and mixed.endswith(":v3-0a1b")


def test_a_versions_release_tag_names_its_run_and_artifacts_not_only_its_number() -> None:
    """Two registries' v1 (another project, or this one after a reset) never share a name in
    the machine-wide BentoML store or image store; the same version always gets the same."""
    from types import SimpleNamespace

    from maas.release.bento import bento_model_tag
    from maas.tracking.registry import release_tag

    def version(run_id: str, onnx: str) -> SimpleNamespace:
        tags = {"sha256.model.onnx": onnx, "sha256.preprocessing.json": "p" * 64, "gate": "x"}
        return SimpleNamespace(version="1", run_id=run_id, tags=tags)

    mine = release_tag(version("r1", "a" * 64))
    assert mine.startswith("v1-") and len(mine) == 13
    assert mine == release_tag(version("r1", "a" * 64))
    assert release_tag(version("r2", "a" * 64)) != mine  # a reset project: another run
    assert release_tag(version("r1", "b" * 64)) != mine  # other artifacts
    assert bento_model_tag("flight-delay", mine) == f"flight-delay:{mine}"


def test_apt_mirror_reads_both_source_formats(tmp_path: Path) -> None:
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n"
    )
    assert base_image.apt_mirror([deb822]) == "http://mirror.example/debian"
    one_line = tmp_path / "sources.list"
    one_line.write_text("deb [arch=amd64] http://other.example/debian bookworm main\n")
    assert base_image.apt_mirror([tmp_path / "missing", one_line]) == "http://other.example/debian"
    assert base_image.apt_mirror([]) == base_image.DEFAULT_MIRROR


def test_a_docker_volume_is_shared_with_the_folders_group_not_with_everyone(tmp_path: Path) -> None:
    """Docker has no `:U` volume option: the prediction-log folder is opened to the service's
    user through the folder's group (setgid 2770, `--group-add`), never made 0777."""
    docker = tmp_path / "bin" / "docker"
    docker.parent.mkdir()
    argv = tmp_path / "argv"
    docker.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {argv}\necho container-id\n')
    docker.chmod(0o755)
    folder = tmp_path / "predictions"
    started = containers.run_container(
        str(docker), "img", "name", 8080, volumes={folder: "/var/log/maas"}
    )
    assert started.strip() == "container-id"
    assert folder.stat().st_mode & 0o7777 == 0o2770  # nobody else may read or write
    args = argv.read_text().splitlines()
    assert args[args.index("--group-add") + 1] == str(folder.stat().st_gid)
    assert f"{folder.resolve()}:/var/log/maas" in args


@pytest.mark.parametrize("tool", ["docker", "podman"])
def test_a_serving_container_is_confined_and_binds_loopback(tmp_path: Path, tool: str) -> None:
    """Issue 27 items 6 and 7, the run arguments of both runtimes: on the host network the
    service binds 127.0.0.1 (`BENTOML_HOST`; without it BentoML listened on 0.0.0.0), the root
    file system is read-only with a tmpfs where the service writes, no capabilities, no
    privilege gain, and the deploy settings' limits (tests/e2e/test_packaging.py checks a real
    container)."""
    runtime = tmp_path / "bin" / tool
    runtime.parent.mkdir()
    argv = tmp_path / "argv"
    runtime.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> {argv}\necho container-id\n')
    runtime.chmod(0o755)
    limits = containers.Limits(memory_mb=512, cpus=1.5, pids=64)
    containers.run_container(str(runtime), "img", "name", 8080, limits=limits)
    args = argv.read_text().splitlines()
    args = args[args.index("run") :]
    assert args[args.index("--network") + 1] == "host"
    assert "BENTOML_HOST=127.0.0.1" in args and "PORT=8080" in args
    assert {"--read-only", "--cap-drop=ALL"} <= set(args)
    assert args[args.index("--security-opt") + 1] == "no-new-privileges"
    tmpfs = [args[i + 1].split(":")[0] for i, arg in enumerate(args) if arg == "--tmpfs"]
    assert tmpfs == list(containers.WRITABLE)
    assert f"BENTOML_HOME={containers.BENTOML_HOME}" in args  # its store folders: in the tmpfs
    assert args[args.index("--memory") + 1] == "512m"
    assert args[args.index("--cpus") + 1] == "1.5"
    assert args[args.index("--pids-limit") + 1] == "64"
    assert args[-1] == "img"
    argv.unlink()
    containers.run_container(str(runtime), "img", "name", 8080, network="bridge")
    args = argv.read_text().splitlines()
    assert args[args.index("--publish") + 1] == "127.0.0.1:8080:3000"
    assert "--read-only" in args and args[args.index("--memory") + 1] == "2048m"


def test_the_uv_wheel_is_pinned_by_hash_and_a_swapped_one_is_refused(tmp_path) -> None:
    """Issue 27.12: the uv that BentoML's image build runs comes from PyPI pinned by version
    and sha256 (pip --require-hashes); a wheel in the cache that is not that file is removed
    and nothing of it goes into the image."""
    cache = tmp_path / "wheels"
    cache.mkdir()
    (cache / base_image.UV_WHEEL).write_bytes(b"PK\x03\x04 a wheel someone swapped in")
    with pytest.raises(containers.ContainerError, match="not the pinned"):
        base_image._uv_wheel(cache)
    assert not (cache / base_image.UV_WHEEL).exists()
    wheel = base_image._uv_wheel(cache)  # the real download, checked by pip and by us
    assert wheel.name == base_image.UV_WHEEL
