"""``polyrec quickstart``: a generated multimodal catalog, users with known tastes, the whole
engine run on them, and a report. See :func:`run_quickstart`."""

from polyrec.engine.quickstart.run import DEFAULT_OUT, QuickstartOptions, QuickstartResult, run_quickstart

__all__ = ["DEFAULT_OUT", "QuickstartOptions", "QuickstartResult", "run_quickstart"]
