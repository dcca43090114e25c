"""``polyrec init``: look at a catalog (and its events) and write a starting config.

What each column becomes is decided from its values, never from a known data set:

- the **item id**: a column named ``id`` or ``..._id``/``...Id`` whose values are unique, else
  the first column with unique values (``[columns] item_id``);
- **image / audio** columns: strings whose file extension says so, or whose files (a few,
  resolved next to the catalog) start with an image or audio signature; they get the
  image encoder the quickstart would pick (pretrained weights on this machine) or ``librosa``;
- **text** columns (several words, or mostly distinct strings such as titles) and **tag
  lists** become one derived ``text`` field for the ``sentence-transformers`` encoder;
- **numbers, dates, categories and links** stay metadata: filterable, not encoded;
- with **events**: the user, item, time, value and kind columns are found (the item column
  is the one whose values are catalog ids), and the ``behavior`` encoder and a trained
  scorer (``self-attention`` on a large log, ``mlp`` on a small one) are added. Without
  events the scorer is ``target-attention``, which needs no training.

Every choice comes with a one-line reason; the reasons are printed and written as
comments at the top of the config.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polyrec.contracts import PolyrecError, has_value

__all__ = ["ColumnProfile", "InitResult", "profile_column", "infer_config", "render"]

SAMPLE_ROWS = 2000
SNIFF_FILES = 5
#: a log at least this long trains the self-attention scorer; a shorter one the quick mlp
SEQUENCE_EVENTS = 10_000
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".ogg", ".oga", ".m4a", ".aif", ".aiff"})
_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG", 0, "image"),
    (b"\xff\xd8\xff", 0, "image"),
    (b"GIF8", 0, "image"),
    (b"BM", 0, "image"),
    (b"WEBP", 8, "image"),
    (b"WAVE", 8, "audio"),
    (b"fLaC", 0, "audio"),
    (b"OggS", 0, "audio"),
    (b"ID3", 0, "audio"),
    (b"FORM", 0, "audio"),
)
_WORD = re.compile(r"\w+")
_ID_NAME = re.compile(r"(^id$|_id$|Id$|ID$|^key$|^sku$)")
_USER_NAME = re.compile(r"user|customer|member|visitor|account|client|person|reader|viewer|listener", re.I)
_TIME_NAME = re.compile(r"time|date|^ts$|when|created|stamp", re.I)
_VALUE_NAME = re.compile(r"rating|score|value|weight|stars|count|qty|quantity|amount", re.I)
_KIND_NAME = re.compile(r"kind|type|event|action|verb|interaction", re.I)


@dataclass
class ColumnProfile:
    """What one column holds and what it becomes."""

    name: str
    kind: str  # text, tags, image, audio, number, date, link, category, empty, other
    why: str


@dataclass
class InitResult:
    config: dict[str, Any]
    decisions: list[str] = field(default_factory=list)
    profiles: list[ColumnProfile] = field(default_factory=list)


# -- profiling one column ----------------------------------------------------------------


def _sniff(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError:
        return None
    for signature, offset, kind in _SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            return kind
    return None


def _media_kind(texts: Sequence[str], base_dir: Path | None) -> tuple[str, str] | None:
    suffixes = [Path(text).suffix.lower() for text in texts]
    for kind, known in (("image", IMAGE_SUFFIXES), ("audio", AUDIO_SUFFIXES)):
        share = sum(suffix in known for suffix in suffixes) / len(texts)
        if share >= 0.5:
            return kind, f"{share:.0%} of the values end in an {kind} file extension"
    if base_dir is None:
        return None
    sniffed = [
        _sniff((base_dir / text) if not Path(text).is_absolute() else Path(text)) for text in texts[:SNIFF_FILES]
    ]
    found = [kind for kind in sniffed if kind]
    if found and len(found) >= len(sniffed) / 2:
        kind = max(set(found), key=found.count)
        return kind, f"{len(found)} of the first {len(sniffed)} files start with an {kind} signature"
    return None


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float | np.integer | np.floating):
        return True
    try:
        float(str(value))
    except ValueError:
        return False
    return True


def _is_date(texts: Sequence[str]) -> bool:
    parsed = pd.to_datetime(pd.Series(list(texts)), errors="coerce", format="mixed")
    return bool(parsed.notna().mean() >= 0.9)


def profile_column(name: str, values: Sequence[Any], base_dir: Path | None = None) -> ColumnProfile:
    """Classify one column from a sample of its values."""
    present = [list(v) if isinstance(v, list | tuple | np.ndarray) else v for v in values if has_value(v)]
    if not present:
        return ColumnProfile(name, "empty", "no value in the sample")
    if any(isinstance(value, list) for value in present):
        if all(isinstance(x, str) for value in present if isinstance(value, list) for x in value):
            return ColumnProfile(name, "tags", "lists of strings (tags)")
        return ColumnProfile(name, "other", "lists of non-strings (not encoded)")
    if all(_is_number(value) for value in present):
        return ColumnProfile(name, "number", "numbers")
    texts = [str(value).strip() for value in present]
    media = _media_kind(texts, base_dir)
    if media is not None:
        return ColumnProfile(name, media[0], media[1])
    if sum(text.startswith(("http://", "https://")) for text in texts) >= 0.5 * len(texts):
        return ColumnProfile(name, "link", "web links")
    words = float(np.mean([len(_WORD.findall(text)) for text in texts]))
    distinct = len(set(texts)) / len(texts)
    if all(any(ch.isdigit() for ch in text) for text in texts) and _is_date(texts):
        return ColumnProfile(name, "date", "dates")
    if words >= 3:
        return ColumnProfile(name, "text", f"text ({words:.1f} words on average)")
    if distinct >= 0.5 and any(ch.isalpha() for text in texts[:50] for ch in text):
        return ColumnProfile(name, "text", f"short text, {distinct:.0%} distinct (names or titles)")
    return ColumnProfile(name, "category", f"categories ({len(set(texts))} distinct values in the sample)")


# -- reading a sample ------------------------------------------------------------------------


@dataclass
class _Source:
    rows: list[dict[str, Any]]
    id_column: str | None
    events: pd.DataFrame | None = None
    event_columns: dict[str, str] | None = None  # role -> column, already mapped by a dataset loader
    dataset_dir: Path | None = None
    base_dir: Path | None = None
    has_users: bool = False


def _table(path: Path) -> pd.DataFrame:
    from polyrec.engine.readers import read_table

    return read_table(path)


def _from_dataset(path: Path) -> _Source:
    from polyrec.engine.evaluate.loaders import load_dataset

    dataset = load_dataset(path)
    rows = [{"id": item.id, **item.fields} for item in dataset.items[:SAMPLE_ROWS]]
    return _Source(rows, None, dataset.events, None, path, path, dataset.users is not None)


def _read_source(data: Path) -> _Source:
    if not data.exists():
        raise PolyrecError(f"polyrec init: no such file or directory: {data}")
    if data.is_dir():
        return _from_dataset(data)
    frame = _table(data).head(SAMPLE_ROWS)
    rows = [{key: value for key, value in row.items()} for row in frame.to_dict("records")]
    return _Source(rows, _id_column(frame), base_dir=data.parent)


def _id_column(frame: pd.DataFrame) -> str:
    unique = [c for c in frame.columns if frame[c].notna().all() and frame[c].astype(str).is_unique]
    named = [c for c in unique if _ID_NAME.search(str(c))]
    if named:
        return str(named[0])
    if unique:
        return str(unique[0])
    raise PolyrecError(
        f"polyrec init: no column has a unique value per row to serve as the item id: {list(frame.columns)}"
    )


# -- events ----------------------------------------------------------------------------------


def _event_columns(frame: pd.DataFrame, item_ids: set[str]) -> tuple[dict[str, str], list[str]]:
    """role -> column of an events table, and why."""
    columns = [str(c) for c in frame.columns]
    overlap = {c: frame[c].astype(str).isin(item_ids).mean() for c in columns}
    item = max(columns, key=lambda c: overlap[c])
    if overlap[item] < 0.5:
        raise PolyrecError(
            f"polyrec init: no events column holds catalog ids (best: {item!r}, {overlap[item]:.0%} of its values)"
        )
    roles, why = {"item": item}, [f"columns.item = {item!r}: {overlap[item]:.0%} of its values are catalog ids"]
    rest = [c for c in columns if c != item]
    user = next((c for c in rest if _USER_NAME.search(c)), None)
    user = user or max(rest, key=lambda c: frame[c].nunique(), default=None)
    if user is None:
        raise PolyrecError(f"polyrec init: the events have no user column besides {item!r}")
    roles["user"] = user
    why.append(
        f"columns.user = {user!r}: " + ("its name says so" if _USER_NAME.search(user) else "most distinct values")
    )
    rest.remove(user)
    numeric = [c for c in rest if pd.to_numeric(frame[c], errors="coerce").notna().all()]
    stamp = next((c for c in rest if _TIME_NAME.search(c)), None)
    if stamp is None:
        stamp = next((c for c in numeric if frame[c].astype(float).min() > 1e8), None)
    if stamp is not None:
        roles["timestamp"] = stamp
        why.append(f"columns.timestamp = {stamp!r}")
        rest.remove(stamp)
    value = next((c for c in rest if c in numeric and _VALUE_NAME.search(c)), None)
    if value is not None:
        roles["value"] = value
        why.append(f"columns.value = {value!r}: numbers, named like a rating or weight")
    kind = next((c for c in rest if c not in numeric and _KIND_NAME.search(c) and frame[c].nunique() <= 20), None)
    if kind is not None:
        roles["kind"] = kind
        why.append(f"columns.kind = {kind!r}: a few distinct labels")
    return roles, why


# -- the config ------------------------------------------------------------------------------


def _relative(path: Path, to: Path) -> str:
    try:
        return Path(path).resolve().relative_to(to.resolve()).as_posix()
    except ValueError:
        import os

        return Path(os.path.relpath(Path(path).resolve(), to.resolve())).as_posix()


def _image_slot(name: str) -> tuple[dict[str, Any] | None, str]:
    from polyrec.engine.quickstart.image_weights import choose

    choice = choose()
    if choice.slot is None:
        return None, f"{name}: images, not encoded ({choice.message})"
    return {**choice.slot, "field": name}, f"encoders.{name}: {choice.slot['plugin']} ({choice.message})"


def _behavior_slot(events: pd.DataFrame, item_column: str) -> tuple[dict[str, Any], str]:
    per_item = events[item_column].value_counts()
    slot: dict[str, Any] = {"plugin": "behavior"}
    notes = []
    if per_item.median() < 5:
        slot["min_count"] = 1
        notes.append("min_count 1: the median item has fewer than 5 events")
    dim = int(min(64, max(8, 2 ** int(np.log2(max(len(per_item), 2) / 4)))))
    if dim != 64:
        slot["dim"] = dim
        notes.append(f"dim {dim}: {len(per_item)} items have events")
    return slot, "encoders.behavior: behavior (item vectors from co-occurrence in the events)" + (
        f"; {'; '.join(notes)}" if notes else ""
    )


def infer_config(data: Path, events: Path | None = None, *, config_dir: Path | None = None) -> InitResult:
    """A starting config for the catalog (or dataset directory) ``data``; paths relative to ``config_dir``."""
    config_dir = config_dir or Path.cwd()
    source = _read_source(Path(data))
    result = InitResult(config={"seed": 0})
    columns: dict[str, Any] = {}
    if source.id_column is not None and source.id_column != "id":
        columns["item_id"] = source.id_column
    if source.id_column is not None:
        result.decisions.append(f"columns.item_id = {source.id_column!r}: unique per row")
    encoders: dict[str, Any] = {}
    text_sources: list[str] = []
    names = [key for key in dict.fromkeys(k for row in source.rows for k in row) if key not in ("id", source.id_column)]
    for name in names:
        profile = profile_column(name, [row.get(name) for row in source.rows], source.base_dir)
        result.profiles.append(profile)
        if profile.kind in ("text", "tags"):
            text_sources.append(name)
        elif profile.kind == "image":
            slot, why = _image_slot(name)
            if slot is not None:
                encoders[name] = slot
            result.decisions.append(why)
        elif profile.kind == "audio":
            encoders[name] = {"plugin": "librosa", "field": name}
            result.decisions.append(f"encoders.{name}: librosa ({profile.why})")
        else:
            result.decisions.append(f"{name}: metadata for filters ({profile.why})")
    if text_sources:
        encoders = {"text": {"plugin": "sentence-transformers"}, **encoders}
        result.config["derived"] = {"text": text_sources}
        reasons = "; ".join(f"{p.name}: {p.why}" for p in result.profiles if p.name in text_sources)
        result.decisions.insert(
            0, f"encoders.text: sentence-transformers over derived text = {text_sources} ({reasons})"
        )
    event_frame, item_column = _events(source, events, columns, result)
    if event_frame is not None:
        slot, why = _behavior_slot(event_frame, item_column)
        encoders["behavior"] = slot
        result.decisions.append(why)
    if not encoders:
        raise PolyrecError(
            "polyrec init: nothing to encode - no text, image or audio column and no events; "
            f"columns: {', '.join(p.name + ' (' + p.kind + ')' for p in result.profiles)}"
        )
    result.config["store"] = {"plugin": "lancedb", "uri": "polyrec-data"}
    result.config["encoders"] = encoders
    result.config["fusion"] = {"plugin": "weighted-concat"}
    result.config["scorer"] = {"plugin": _scorer(event_frame, result)}
    if columns:
        result.config["columns"] = columns
    if source.dataset_dir is not None:
        result.config["dataset"] = {"path": _relative(source.dataset_dir, config_dir)}
        result.decisions.append(f"dataset.path = {result.config['dataset']['path']!r} (for polyrec evaluate)")
    if source.has_users:
        result.decisions.append(
            "users: the dataset has a users file; `polyrec users` stores it for the cold-start prior"
        )
    return result


def _events(
    source: _Source, events: Path | None, columns: dict[str, Any], result: InitResult
) -> tuple[pd.DataFrame | None, str]:
    if events is not None:
        frame = _table(Path(events)).head(200_000)
        item_ids = {str(row.get(source.id_column or "id")) for row in source.rows}
        roles, why = _event_columns(frame, item_ids)
        defaults = {"user": "user", "item": "item", "timestamp": "timestamp"}
        columns.update({role: column for role, column in roles.items() if defaults.get(role) != column})
        result.decisions += why
        return frame, roles["item"]
    if source.events is not None and len(source.events):
        result.decisions.append(f"events: {len(source.events)} in the dataset (read by its loader)")
        return source.events, "item"
    return None, "item"


def _scorer(events: pd.DataFrame | None, result: InitResult) -> str:
    if events is None:
        result.decisions.append(
            "scorer: target-attention (no events: compares candidates with the history, no training)"
        )
        return "target-attention"
    if len(events) >= SEQUENCE_EVENTS:
        result.decisions.append(f"scorer: self-attention (trained on the order of {len(events)} events)")
        return "self-attention"
    result.decisions.append(f"scorer: mlp ({len(events)} events: too few for self-attention; trains in seconds)")
    return "mlp"


def render(result: InitResult, header: str) -> str:
    """The config as TOML, the decisions as comments on top."""
    from polyrec.engine.quickstart.engine_config import Inline, toml_text

    config = dict(result.config)
    if "derived" in config:
        config["derived"] = Inline(config["derived"])
    body = toml_text(config).split("\n", 1)[1]  # drop the quickstart's own header line
    comments = [f"# {header}", "# Relative paths are relative to this file. Decisions:"]
    comments += [f"#   {line}" for line in result.decisions]
    return "\n".join(comments) + "\n" + body
