"""An input named by a URI with a scheme (`s3://bucket/prefix/`, `gs://...`, `az://...`):
resolved, opened and fingerprinted through fsspec, by the filesystem package of its scheme
(s3fs, gcsfs, adlfs: installed beside maas where wanted; fsspec names the one missing).

Credentials come from the environment, never from the command line: the storage's own
variables (`AWS_*` for s3://, `GOOGLE_*` for gs://, `AZURE_*` for az://, fsspec's `FSSPEC_*`)
reach the processes that read (`storage_environment`). What is recorded or logged of the URI
(`shown`) has any `user:password@` and `?query` taken out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from maas.errors import ScoringError
from maas.redact import redact_text

SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
GLOB = "*?["
# the variables each scheme's filesystem reads its credentials and endpoint from
STORAGE_ENV_PREFIXES = {
    "s3": ("AWS_",),
    "s3a": ("AWS_",),
    "gs": ("GOOGLE_", "GCLOUD_"),
    "gcs": ("GOOGLE_", "GCLOUD_"),
    "az": ("AZURE_",),
    "abfs": ("AZURE_",),
    "abfss": ("AZURE_",),
    "adl": ("AZURE_",),
}
STORAGE_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
# each filesystem's stamp of a file's content or modification, as `fs.info` gives it
STAMPS = ("ETag", "etag", "md5Hash", "LastModified", "last_modified", "updated", "mtime")


def is_uri(source: str) -> bool:
    """Whether `source` names its filesystem by a scheme (`s3://...`) rather than a path."""
    return bool(SCHEME.match(source))


def shown(uri: str) -> str:
    """`uri` as it may be logged or recorded: without `user:password@` or a `?query`."""
    if not is_uri(uri):
        return uri
    scheme, rest = uri.split("://", 1)
    netloc, slash, path = rest.split("?", 1)[0].partition("/")
    return f"{scheme}://{netloc.rsplit('@', 1)[-1]}{slash}{path}"


def _problem(uri: str, error: BaseException) -> ScoringError:
    first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
    return ScoringError(redact_text(f"--input {shown(uri)}: {first}".replace(uri, shown(uri))))


def filesystem(uri: str) -> tuple[Any, str]:
    """(the fsspec filesystem, the path in it) of `uri`; a scheme whose package is missing is
    a ScoringError naming the package (fsspec's own words: "Install s3fs to access S3")."""
    try:
        import fsspec.core

        return fsspec.core.url_to_fs(uri)
    except ImportError as error:  # fsspec itself, or the scheme's package
        raise ScoringError(f"--input {shown(uri)}: {error}") from None
    except Exception as error:  # an unknown protocol, a filesystem that cannot start
        raise _problem(uri, error) from None


def remote_files(uri: str, suffixes: Mapping[str, str]) -> list[str]:
    """The files `uri` names, as full URIs: one object, every Parquet/CSV one (`suffixes`)
    under a "folder" prefix, or a glob's matches. Object stores whose bucket is in the path
    (s3, gs, az, ...) only: a URI that names a host or options is refused."""
    import fsspec.core

    fs, path = filesystem(uri)
    try:
        if fsspec.core.url_to_fs(fs.unstrip_protocol(path))[0] is not fs:
            raise ScoringError(
                f"--input {shown(uri)}: maas score reads object-store URIs (s3://bucket/..., "
                "gs://, az://), not ones that name a host or options"
            )
        if any(char in path for char in GLOB):
            found = sorted(fs.glob(path))
        elif fs.isdir(path):
            found = sorted(p for p in fs.find(path) if _suffix(p) in suffixes)
        elif fs.isfile(path):
            found = [path]
        else:
            bucket = path.strip("/").split("/")[0]
            gone = f" (no bucket {bucket} there)" if bucket and not fs.exists(bucket) else ""
            raise ScoringError(f"--input {shown(uri)}: no such object or prefix{gone}")
        found = [p for p in found if fs.isfile(p)]
    except ScoringError:
        raise
    except Exception as error:  # no such bucket, access denied, cannot connect
        raise _problem(uri, error) from None
    return [fs.unstrip_protocol(p) for p in found]


def _suffix(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""


def stamp(uri: str) -> list[Any]:
    """What tells a changed object: its size and its ETag / modification time."""
    fs, path = filesystem(uri)
    try:
        info = fs.info(path)
    except Exception as error:
        raise _problem(uri, error) from None
    return [info.get("size"), *(str(info[key]) for key in STAMPS if key in info)]


def storage_environment(uri: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of `environ` the filesystem of `uri` reads (credentials, endpoint,
    region, proxies): given, by environment only, to the processes that read the input."""
    if not is_uri(uri):
        return {}
    prefixes = ("FSSPEC_", *STORAGE_ENV_PREFIXES.get(urlsplit(uri).scheme.lower(), ()))
    return {
        name: value
        for name, value in environ.items()
        if name.startswith(prefixes) or name.upper() in STORAGE_ENV
    }
