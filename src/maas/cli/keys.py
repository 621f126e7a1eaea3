"""`maas key`: the gate key's lifecycle (list, rotate, retire); see maas.operate.keys."""

from __future__ import annotations

from typing import Annotated

import typer

from maas.cli.common import Project, handled, out, with_project

key_app = typer.Typer(help="The gate key: list its keys, rotate, retire an old one.")


@key_app.command("list")
@handled
@with_project
def list_keys(project: Project) -> None:
    """The ring's keys by fingerprint (never the key) and the versions each one signed."""
    from maas.operate.keys import key_uses

    for use in key_uses(project.load()):
        role = "signs  " if use.current else "verifies"
        signed = f"v{', v'.join(use.versions)}" if use.versions else "no version"
        out.print(f"{use.fingerprint}  {role}  {signed}")


@key_app.command()
@handled
@with_project
def rotate(project: Project) -> None:
    """A new key signs from now on; the older ones keep verifying until retired."""
    from maas.operate.keys import rotate as rotate_key
    from maas.tracking.keyring import fingerprint

    ring = rotate_key(project.load())
    older = ", ".join(fingerprint(key) for key in ring.older)
    out.print(f"gate key rotated: {fingerprint(ring.current)} signs; {older} verify")


@key_app.command()
@handled
@with_project
def retire(
    project: Project,
    fingerprint: Annotated[str, typer.Argument(help="The older key's fingerprint (key list).")],
    force: Annotated[
        bool, typer.Option(help="Retire although versions verify only with it.")
    ] = False,
) -> None:
    """Stop trusting an older key: the versions it alone signed are refused from now on."""
    from maas.operate.keys import retire as retire_key

    retire_key(project.load(), fingerprint, force)
    out.print(f"gate key {fingerprint} retired")
