"""Config against data, before anything is encoded: does every encoder slot find its field?

A slot whose field (or, for a derived field, every one of its sources) is missing from
every item would leave the slot empty for the whole catalog: usually a config written for
another schema. Ingest then stops at once with one message naming the slot, the fields it
wanted and the fields the items do have, instead of encoding nothing and failing later
about something else. Slots that read the item id (behavior) need no field.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from polyrec.contracts import ConfigError, Item, ItemFailure, PolyrecConfig, has_value
from polyrec.engine.encoding import FieldEncoder

__all__ = ["FieldCheck", "failure_line"]


class FieldCheck:
    """Collects which fields the items carry until every slot has found one of its fields."""

    def __init__(self, settings: PolyrecConfig, encoders: Mapping[str, FieldEncoder]) -> None:
        self.settings = settings
        self.items = 0
        self.fields: Counter[str] = Counter()
        #: slot -> the item fields that would give it a value
        self.wanted = {
            fe.slot: [fe.field, *settings.derived.get(fe.field, [])]
            for fe in encoders.values()
            if not fe.encoder.reads_item_id
        }
        self.fields_of = {fe.slot: fe.field for fe in encoders.values()}

    def add(self, items: Iterable[Item]) -> bool:
        """Count the items' fields; True once every slot has found a field."""
        for item in items:
            self.items += 1
            self.fields.update(name for name, value in item.fields.items() if has_value(value))
        return not self.unmet()

    def unmet(self) -> list[str]:
        return [slot for slot, names in self.wanted.items() if not any(self.fields[name] for name in names)]

    def check(self) -> None:
        """Raise a :class:`ConfigError` naming every slot that no item can fill."""
        problems = [(f"encoders.{slot}", self._message(slot)) for slot in self.unmet()]
        if problems and self.items:
            raise ConfigError(problems)

    def _message(self, slot: str) -> str:
        field = self.fields_of[slot]
        sources = self.settings.derived.get(field)
        wanted = f"derived field {field!r} draws on {', '.join(sources)}" if sources else f"reads field {field!r}"
        have = ", ".join(sorted(self.fields)) or "(none)"
        return f"{wanted}; none of {self.items:,} items has any of them; item fields: {have}"


_VARIABLE = re.compile(r"'[^']*'|\"[^\"]*\"|\S*[/\\]\S*|\d+(\.\d+)?")


def _reason_kind(failure: ItemFailure) -> str:
    """A failure's reason with its item-specific parts (names, paths, numbers) blanked, so alike ones count together."""
    reason = _VARIABLE.sub("…", failure.reason)
    where = " ".join(
        part
        for part in (failure.field and f"field={failure.field}", failure.plugin and f"plugin={failure.plugin}")
        if part
    )
    return f"{where}: {reason}" if where else reason


def failure_line(failures: Sequence[ItemFailure], total: int, share: float, top: int = 3) -> str | None:
    """One line when more than ``share`` of ``total`` items failed: how many, and the top reasons counted."""
    if total <= 0 or len(failures) <= share * total:
        return None
    counts = Counter(_reason_kind(failure) for failure in failures).most_common(top)
    reasons = "; ".join(f"{reason} ({count:,})" for reason, count in counts)
    return f"{len(failures):,} of {total:,} items failed ({len(failures) / total:.0%}, above {share:.0%}): {reasons}"
