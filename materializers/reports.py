"""Validation reports and SID quality reports: JSON, with an HTML view."""

from __future__ import annotations

import html
import json

from zenml.enums import ArtifactType, VisualizationType
from zenml.io import fileio

from materializers.base import FolderMaterializer, read_json, scalar_metadata, write_json
from sidkit.data.validation import ValidationReport
from sidkit.evaluation.ab import ABComparison
from sidkit.evaluation.sid_quality import SIDQuality
from sidkit.monitoring.drift import DriftResult


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


class DriftReportMaterializer(FolderMaterializer):
    """summary.json + Evidently JSON (full) + Evidently HTML (sampled); the dashboard shows every page."""

    ASSOCIATED_TYPES = (DriftResult,)
    ASSOCIATED_ARTIFACT_TYPE = ArtifactType.DATA_ANALYSIS

    def write(self, data: DriftResult, folder: str) -> None:
        write_json(folder, "summary.json", data.summary)
        write_json(folder, "evidently.json", data.evidently_json)
        for section, page in data.evidently_html.items():
            with open(f"{folder}/{section}.html", "w", encoding="utf-8") as f:
                f.write(page)

    def read(self, folder: str, data_type: type) -> DriftResult:
        import os

        pages = {}
        for name in sorted(os.listdir(folder)):
            if name.endswith(".html") and name != "visualization.html":
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    pages[name[:-5]] = f.read()
        return DriftResult(read_json(folder, "summary.json"), pages, read_json(folder, "evidently.json"))

    def extract_metadata(self, data: DriftResult) -> dict:
        s = data.summary
        # the dashboard shows HTML in a sandboxed frame where Evidently's scripts do not run: the full page's path
        return {"drift_detected": bool(s.get("drift_detected")), "sid_churn": float(s.get("sid_churn", 0.0)),
                "mode": str(s.get("mode")), "reasons": "; ".join(s.get("reasons", [])) or "none",
                "report_html": str(s.get("report_html") or "")}

    def save_visualizations(self, data: DriftResult) -> dict[str, VisualizationType]:
        import os

        out = {}
        for name, page in {"summary": data.to_html(), **data.evidently_html}.items():
            uri = os.path.join(self.uri, f"visualization_{name}.html")
            with fileio.open(uri, "w") as f:
                f.write(page)
            out[uri] = VisualizationType.HTML
        return out


class ABComparisonMaterializer(FolderMaterializer):
    ASSOCIATED_TYPES = (ABComparison,)
    ASSOCIATED_ARTIFACT_TYPE = ArtifactType.DATA_ANALYSIS

    def write(self, data: ABComparison, folder: str) -> None:
        write_json(folder, "comparison.json", data.result)

    def read(self, folder: str, data_type: type) -> ABComparison:
        return ABComparison(read_json(folder, "comparison.json"))

    def extract_metadata(self, data: ABComparison) -> dict:
        d = data.result.get("decision", {})
        return {"promote": bool(d.get("promote")), "reason": str(d.get("reason", "")),
                "champion": str(data.result.get("champion")), "challenger": str(data.result.get("challenger"))}

    def html(self, data: ABComparison) -> str:
        return data.to_html()
