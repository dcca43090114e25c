"""HTML reports of an engine's recommendations: histories, recommendations with the history
items behind them, and a 2-D map of the item vectors. See :func:`build_report`."""

from polyrec.engine.report.build import MAP_FILE, REPORT_FILE, ReportFiles, ReportOptions, build_report

__all__ = ["MAP_FILE", "REPORT_FILE", "ReportFiles", "ReportOptions", "build_report"]
