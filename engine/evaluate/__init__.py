"""Offline evaluation: dataset loaders, protocols (splits), ranking metrics and the runner.

    from polyrec.engine.evaluate.loaders import load_dataset
    from polyrec.engine.evaluate.runner import evaluate, evaluate_baseline

    data = load_dataset("ml-100k/")                       # RecBole, GroupLens or items.* + events.*
    result = evaluate("polyrec.toml", data, "loo-full")   # {"valid": {...}, "test": {...}, ...}

Import submodules directly; nothing heavy happens at import time.
"""

__all__: list[str] = []
