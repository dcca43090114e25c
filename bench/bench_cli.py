"""Wall time of one-shot CLI commands, beside ``polyrec --help`` measured in the same run.

    python bench/bench_cli.py [--runs 5] [--config polyrec.toml]

Without ``--config`` the demo (examples/demo: 36 books, MiniLM text, behavior vectors,
target attention) is copied to a temporary folder and built there with ``polyrec ingest``,
``events`` and ``fit``. Then, alternating so that every command sees the same machine load,
each of these runs ``--runs`` times as a fresh process:

- ``python -c pass``: the interpreter alone;
- ``polyrec --help``: the CLI's own imports (the baseline);
- ``polyrec recommend --user ada -k 5``: a one-shot recommendation, store opened and closed
  (answered from the store's read snapshot, see plugins/stores/lancedb/snapshot.py);
- ``polyrec recommend ... --explain --json``;
- ``recommend through LanceDB``: the same with ``read_snapshot = false`` (a copy of the config
  beside it, removed after): every read through LanceDB, as before the snapshot existed;
- ``recommend, first after a write``: the snapshot file deleted first, so the command reads
  through LanceDB and writes a new snapshot when it closes (what the first read after
  ``ingest``/``events``/``fit`` by another store costs; the writer itself leaves one).

Every command runs as a user's Python does: with a bytecode cache (in a temporary folder,
``PYTHONPYCACHEPREFIX``, filled by a first untimed run), whatever ``PYTHONDONTWRITEBYTECODE``
says in this shell; without one, each run also compiles polyrec's modules (about 0.25 s).

Reported: median and best wall seconds, median CPU seconds (user + system, less sensitive to
other load on the machine), the ratio of each median to ``polyrec --help``,
and the ten slowest top-level imports of one ``recommend`` (``python -X importtime``), which
say where a one-shot command's time goes. The target is recommend <= 1.0 s on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo"
POLYREC = [sys.executable, "-m", "polyrec.engine.cli"]
SNAPSHOT_FILE = "polyrec-read-snapshot.npz"  # beside the store's tables (plugins/stores/lancedb/snapshot.py)


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(command: list[str], cwd: Path) -> float:
    return _run_with_cpu(command, cwd)[0]


def _run_with_cpu(command: list[str], cwd: Path, before: Callable[[], None] | None = None) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run. CPU time suffers less than wall
    time from other processes on the machine, so it is printed beside it. ``before`` runs first, untimed."""
    if before is not None:
        before()
    cpu, start = _cpu_of_children(), time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    seconds, cpu = time.perf_counter() - start, _cpu_of_children() - cpu
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, cpu


def _store_folder(config: Path) -> Path:
    """The store's folder of a config (``[store] uri``, relative to the config; default polyrec-data)."""
    import tomllib

    uri = tomllib.loads(config.read_text()).get("store", {}).get("uri", "polyrec-data")
    return (config.parent / uri).resolve()


def _without_snapshot(config: Path) -> Path:
    """A copy of ``config`` beside it (so its relative paths mean the same) with ``read_snapshot = false``."""
    lines = config.read_text().splitlines()
    if "[store]" not in [line.strip() for line in lines]:
        lines.append("[store]")
    at = [line.strip() for line in lines].index("[store]")
    lines.insert(at + 1, "read_snapshot = false")
    copy = config.with_name(f".bench-cli-{os.getpid()}-{config.name}")
    copy.write_text("\n".join(lines) + "\n")
    return copy


def build_demo(folder: Path) -> Path:
    for name in ("items.jsonl", "events.csv", "polyrec.toml"):
        shutil.copy(DEMO / name, folder / name)
    config = folder / "polyrec.toml"
    for step in (["ingest", "items.jsonl"], ["events", "events.csv"], ["fit"]):
        _run([*POLYREC, *step, "--config", str(config)], folder)
    return config


def slowest_imports(command: list[str], cwd: Path, count: int = 10) -> list[tuple[float, str]]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *command[1:]], cwd=cwd, capture_output=True, text=True, check=False
    )
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if name.startswith("  "):  # only top-level imports: nested ones are inside them
            continue
        try:
            rows.append((int(cumulative) / 1e6, name.strip()))
        except ValueError:
            continue  # the header line
    return sorted(rows, reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs of each command (default: 5)")
    parser.add_argument("--config", type=Path, help="an ingested and fitted config (default: build the demo)")
    parser.add_argument("--user", default="ada", help="user to recommend for (default: ada, from the demo)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        folder = Path(tmp)
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
        config = args.config.resolve() if args.config else build_demo(folder)
        recommend = [*POLYREC, "recommend", "--user", args.user, "-k", "5", "--config", str(config)]
        snapshot = _store_folder(config) / SNAPSHOT_FILE
        full_path = _without_snapshot(config)
        through_lancedb = [*POLYREC, "recommend", "--user", args.user, "-k", "5", "--config", str(full_path)]
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "polyrec --help": [*POLYREC, "--help"],
            "polyrec recommend": recommend,
            "polyrec recommend --explain --json": [*recommend, "--explain", "--json"],
            "recommend through LanceDB": through_lancedb,
            "recommend, first after a write": recommend,
        }
        before = {"recommend, first after a write": lambda: snapshot.unlink(missing_ok=True)}
        try:
            for command in ([*POLYREC, "--help"], through_lancedb, recommend, recommend):  # fill the caches
                _run(command, folder)
            times: dict[str, list[float]] = {name: [] for name in commands}
            cpu: dict[str, list[float]] = {name: [] for name in commands}
            load_before = os.getloadavg()
            for _ in range(args.runs):
                for name, command in commands.items():
                    wall, used = _run_with_cpu(command, folder, before.get(name))
                    times[name].append(wall)
                    cpu[name].append(used)
        finally:
            full_path.unlink(missing_ok=True)
        baseline = statistics.median(times["polyrec --help"])
        print(f"one-shot CLI commands, {args.runs} runs each (config: {args.config or 'the demo'})")
        loads = (" ".join(f"{x:.2f}" for x in load) for load in (load_before, os.getloadavg()))
        print("load average (1, 5, 15 min) before: {} / after: {}".format(*loads))
        print(f"{'command':<36} {'median s':>9} {'best s':>8} {'cpu s':>7} {'x --help':>9}")
        for name, values in times.items():
            median = statistics.median(values)
            used = statistics.median(cpu[name])
            print(f"{name:<36} {median:9.3f} {min(values):8.3f} {used:7.3f} {median / baseline:9.2f}")
        full_path = _without_snapshot(config)
        try:
            for title, command in (
                ("`polyrec recommend`", recommend),
                ("`recommend through LanceDB`", through_lancedb),
            ):
                print(f"\nslowest top-level imports of one {title} (cumulative s):")
                for seconds, name in slowest_imports(command, folder):
                    print(f"  {seconds:7.3f}  {name}")
        finally:
            full_path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
