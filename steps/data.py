"""Data steps: load, validate (Great Expectations), gate, split."""


from typing import Annotated, Tuple

import polars as pl
from zenml import get_step_context, step

from sidkit.data.loaders import load_dataset
from sidkit.data.schema import Catalogue
from sidkit.data.splits import Splits, leave_one_out
from sidkit.data.validation import ValidationReport, raise_for_report, validate_catalogue
from sidkit.settings import state_dir
from steps.artifacts import Artifacts
from steps.report_store import store_report


@step
def load_data(dataset: dict, source_fingerprint: str = "") -> Annotated[Catalogue, Artifacts.RAW_CATALOGUE]:
    """Read a dataset in any supported format into the canonical catalogue (see sidkit.data.loaders).

    ``source_fingerprint`` (the content hash of the files the dataset config reads, computed when
    the pipeline is built) is not used here: as a step parameter it is part of ZenML's cache key,
    so a file edited in place is read again instead of served from the cache.
    """
    return load_dataset(dataset)


@step
def validate_data(catalogue: Catalogue, rules: dict) -> Tuple[
    Annotated[Catalogue, Artifacts.CATALOGUE],
    Annotated[ValidationReport, Artifacts.VALIDATION_REPORT],
    Annotated[pl.DataFrame, Artifacts.QUARANTINE],
]:
    """Run the checks; never raises for bad data, so the report and quarantine are always stored."""
    report, quarantine, validated = validate_catalogue(catalogue, rules)
    return validated, report, quarantine


@step(enable_cache=False)
def validation_gate(report: ValidationReport, publish: bool = True) -> Annotated[bool, "validation_passed"]:
    """Write this run's validation page (``publish``; also when the checks came from the step cache, so every
    run lists its page), then stop the pipeline if validation failed; the message names file, row, column."""
    if publish:
        folder = validation_page_folder(get_step_context().pipeline_run.name)
        report.save(folder)
        store_report(folder, "validation")
    raise_for_report(report)
    return True


def validation_page_folder(run_name: str):
    """Where a run's data validation page goes: ``<reports>/validation/<run name>/report.html``."""
    return state_dir() / "reports" / "validation" / run_name


@step
def split_data(catalogue: Catalogue, validation_passed: bool, max_history: int = 20) -> Annotated[Splits, Artifacts.SPLITS]:
    """Leave-one-out: last item test, second-to-last validation; histories capped at ``max_history``."""
    return leave_one_out(catalogue.interactions, max_history=max_history)
