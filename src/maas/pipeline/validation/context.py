"""The ephemeral Great Expectations context a validation run uses, with its Data Docs site
under reports_dir when one is given (shared by the pandas and the Spark engine)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def gx_context(reports_dir: Path | None) -> Any:
    """An ephemeral context without progress bars; Data Docs (site `maas`) under
    reports_dir/data_docs when reports_dir is set."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    if reports_dir is not None:
        context.add_data_docs_site(
            site_name="maas",
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str((reports_dir / "data_docs").resolve()),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    return context
