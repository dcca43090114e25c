"""Write ml-100k (RecBole atomic files in ../shared/data) in the two GroupLens formats, for tests.

GroupLens terms forbid redistributing MovieLens, so the other formats are built in a
temporary directory from the RecBole files: ``u.data`` + ``u.item`` + ``u.user`` (the
100k release's layout) and ``ratings.csv`` + ``movies.csv`` (the "latest" releases' layout).
Event order, titles with their "(year)", genres and user attributes are carried over.
"""

from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["ML100K", "GENRES", "write_grouplens_100k", "write_grouplens_latest", "subset_recbole"]

ML100K = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"

#: the genre flags of u.item, in the 100k release's order
GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = [name.split(":")[0] for name in next(reader)]
        return header, [row for row in reader if row]


def _items(source: Path) -> list[dict[str, str]]:
    header, rows = _rows(source / f"{source.name}.item")
    return [dict(zip(header, row)) for row in rows]


def _titled(item: dict[str, str]) -> str:
    year = item.get("release_year", "").strip()
    return f"{item['movie_title']} ({year})" if year else item["movie_title"]


def write_grouplens_100k(out: Path, source: Path = ML100K) -> Path:
    """``out/u.data``, ``out/u.item`` and ``out/u.user`` from RecBole files."""
    out.mkdir(parents=True, exist_ok=True)
    _, events = _rows(source / f"{source.name}.inter")
    with (out / "u.data").open("w", encoding="latin-1", newline="") as handle:
        handle.writelines(f"{user}\t{item}\t{rating}\t{ts}\n" for user, item, rating, ts in events)
    with (out / "u.item").open("w", encoding="latin-1", newline="") as handle:
        for item in _items(source):
            genres = set(item.get("class", "").split())
            year = item.get("release_year", "").strip()
            released = f"01-Jan-{year}" if year else ""
            flags = ["1" if genre in genres else "0" for genre in GENRES]
            handle.write("|".join([item["item_id"], _titled(item), released, "", "", *flags]) + "\n")
    user_file = source / f"{source.name}.user"
    if user_file.is_file():
        _, users = _rows(user_file)
        with (out / "u.user").open("w", encoding="latin-1", newline="") as handle:
            handle.writelines("|".join(row) + "\n" for row in users)
    return out


def write_grouplens_latest(out: Path, source: Path = ML100K) -> Path:
    """``out/ratings.csv`` and ``out/movies.csv`` from RecBole files."""
    out.mkdir(parents=True, exist_ok=True)
    _, events = _rows(source / f"{source.name}.inter")
    with (out / "ratings.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["userId", "movieId", "rating", "timestamp"])
        writer.writerows(events)
    with (out / "movies.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["movieId", "title", "genres"])
        for item in _items(source):
            genres = "|".join(item.get("class", "").split()) or "(no genres listed)"
            writer.writerow([item["item_id"], _titled(item), genres])
    return out


def subset_recbole(out: Path, users: int, source: Path = ML100K) -> Path:
    """RecBole files of the first ``users`` users (in file order) and the items they rated."""
    name = source.name
    out.mkdir(parents=True, exist_ok=True)
    _header, events = _rows(source / f"{name}.inter")
    kept_users: list[str] = []
    for row in events:
        if row[0] not in kept_users:
            if len(kept_users) == users:
                continue
            kept_users.append(row[0])
    chosen = set(kept_users)
    kept = [row for row in events if row[0] in chosen]
    items = {row[1] for row in kept}
    for suffix, rows, key in (("inter", kept, None), ("item", None, items), ("user", None, chosen)):
        lines = (source / f"{name}.{suffix}").read_text(encoding="utf-8").splitlines()
        if rows is not None:
            body = ["\t".join(row) for row in rows]
        else:
            body = [line for line in lines[1:] if line.split("\t", 1)[0] in key]
        (out / f"{out.name}.{suffix}").write_text("\n".join([lines[0], *body]) + "\n", encoding="utf-8")
    return out
