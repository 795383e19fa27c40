"""Validation reports and SID quality reports: JSON, with an HTML view."""

from __future__ import annotations

import html
import json

from zenml.enums import ArtifactType

from materializers.base import FolderMaterializer, read_json, scalar_metadata, write_json
from sidkit.data.validation import ValidationReport
from sidkit.evaluation.sid_quality import SIDQuality


class ValidationReportMaterializer(FolderMaterializer):
    ASSOCIATED_TYPES = (ValidationReport,)
    ASSOCIATED_ARTIFACT_TYPE = ArtifactType.DATA_ANALYSIS

    def write(self, data: ValidationReport, folder: str) -> None:
        write_json(folder, "report.json", data.to_dict())
        with open(f"{folder}/report.html", "w", encoding="utf-8") as f:
            f.write(data.to_html())

    def read(self, folder: str, data_type: type) -> ValidationReport:
        return ValidationReport.from_dict(read_json(folder, "report.json"))

    def extract_metadata(self, data: ValidationReport) -> dict:
        return {"passed": data.passed, "rejected_rows": data.rejected_rows, "mode": data.mode,
                "failed_checks": sum(not c.success for c in data.checks), "subject": data.subject}

    def html(self, data: ValidationReport) -> str:
        return data.to_html()


class SIDQualityMaterializer(FolderMaterializer):
    ASSOCIATED_TYPES = (SIDQuality,)
    ASSOCIATED_ARTIFACT_TYPE = ArtifactType.DATA_ANALYSIS

    def write(self, data: SIDQuality, folder: str) -> None:
        write_json(folder, "quality.json", data.to_dict())

    def read(self, folder: str, data_type: type) -> SIDQuality:
        return SIDQuality(**read_json(folder, "quality.json"))

    def extract_metadata(self, data: SIDQuality) -> dict:
        return scalar_metadata(data.to_dict())

    def html(self, data: SIDQuality) -> str:
        d = data.to_dict()
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(json.dumps(v))}</td></tr>" for k, v in d.items())
        return ("<html><body style='font-family:sans-serif'><h2>SID quality</h2>"
                f"<table border='1' cellpadding='4' style='border-collapse:collapse'>{rows}</table></body></html>")
