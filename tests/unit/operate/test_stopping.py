"""Stopping `maas watch` in the middle of a release is a stop, never a failed deploy."""

from __future__ import annotations

import signal
import stat

from prefect.exceptions import TerminationSignal

from maas.cli.common import interrupted
from maas.release.containers import remove_container


def raised(make) -> BaseException:
    try:
        make()
    except BaseException as error:
        return error
    raise AssertionError("nothing was raised")


def test_a_clean_up_error_raised_while_a_stop_signal_propagates_counts_as_interrupted():
    def clean_up_fails_during(signal_error: BaseException):
        def run():
            try:
                raise signal_error
            except BaseException:
                raise TimeoutError("podman rm did not finish") from None  # replaces it

        return run

    for stop in (TerminationSignal(signal.SIGTERM), KeyboardInterrupt()):
        error = raised(clean_up_fails_during(stop))
        assert isinstance(error, TimeoutError)  # an ordinary exception comes out ...
        assert interrupted(error)  # ... but it is not a failed deploy


def test_an_ordinary_failure_is_not_an_interrupt():
    def run():
        try:
            raise ValueError("the image did not start")
        except ValueError as error:
            raise RuntimeError("deploy failed") from error

    assert not interrupted(raised(run))
    assert not interrupted(ValueError("alone"))


def test_removing_a_container_never_raises(tmp_path):
    """It runs in except blocks: a hung or missing runtime must not replace the error (or the
    stop signal) being handled."""
    hung = tmp_path / "hung-runtime"
    hung.write_text("#!/bin/sh\nexec sleep 30\n")
    hung.chmod(hung.stat().st_mode | stat.S_IEXEC)
    failing = tmp_path / "failing-runtime"
    failing.write_text("#!/bin/sh\necho 'container state improper' >&2\nexit 125\n")
    failing.chmod(failing.stat().st_mode | stat.S_IEXEC)

    assert remove_container(str(hung), "maas-serve-x", timeout_s=0.5) is False
    assert remove_container(str(tmp_path / "missing-runtime"), "maas-serve-x") is False
    assert remove_container(str(failing), "maas-serve-x") is False
