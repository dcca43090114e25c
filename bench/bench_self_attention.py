"""Training and scoring speed of the ``self-attention`` scorer, against baselines run alongside.

A synthetic log the size of MovieLens-100k (``--items`` items, ``--users`` users with
about ``--length`` events each, a random walk over item neighbourhoods so there is
something to learn) and random ``--dim``-d item vectors.

(a) Training: seconds per epoch of ``fit`` (``--epochs`` epochs, early stopping off), and
    the same per epoch divided by the time of one plain pass of the output layer alone
    (a (positions x dim) @ (dim x items) product, its softmax cross-entropy and backward
    over the same number of positions): the share of the epoch the transformer, the
    batching and the seen-item masks add on top of the unavoidable full-softmax work.
    Beside it, the same epoch with the sampled softmax (``full_softmax_items`` 0; the
    default trains this catalog size with the full one).
(b) Scoring the whole catalog for every user, as the evaluator does: ``score_batch``
    (batched transformer) vs the ``dot`` scorer's per-user ``score`` loop on the same
    histories and items, and vs one ``score`` call per user of this scorer.

(c) Cost curve: seconds of training per 1,000 events on synthetic catalogs of
    ``--curve`` sizes (default 2k, 10k, 100k items) with the same number of events
    (``--curve-events``): the default (full softmax up to 2,048 items, sampled above),
    the sampled softmax at every size, and the full softmax (up to ``--full-up-to``
    items: beyond, one full epoch costs minutes). Epoch time only (the training loop's
    clock): fit's once-per-fit catalog work is not per event. The goal: the default's
    cost of an event does not grow with the catalog.

    python bench/bench_self_attention.py
    python bench/bench_self_attention.py --items 5000 --users 2000 --threads 2

Timings are the best of ``--repeat`` runs where repeated (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np

from polyrec.contracts import History, TrainingData
from polyrec.plugins.scorers.dot import DotScorer
from polyrec.plugins.scorers.self_attention import SelfAttentionScorer


def synthetic_log(items: int, users: int, length: int, dim: int, seed: int = 0) -> TrainingData:
    """Users walk from item to one of its 20 neighbours; item vectors are random."""
    rng = np.random.default_rng(seed)
    neighbours = rng.integers(0, items, size=(items, 20))
    sequences = []
    for _ in range(users):
        n = max(5, int(rng.geometric(1.0 / length)))
        walk = [int(rng.integers(items))]
        for _ in range(n - 1):
            walk.append(int(neighbours[walk[-1], rng.integers(20)]))
        sequences.append(np.array(walk, dtype=np.int64))
    vectors = rng.normal(size=(items, dim)).astype(np.float32)
    stamps = [np.arange(len(s), dtype=np.float64) for s in sequences]
    return TrainingData([f"i{i}" for i in range(items)], vectors, [f"u{u}" for u in range(users)], sequences, stamps)


def seconds_per_epoch(data: TrainingData, epochs: int, threads: int, **settings: object) -> float:
    """Seconds of one training epoch: the training loop's own clock, so the once-per-fit work
    around it (the catalog's final embedding, the query map: O(catalog)) is left out."""
    scorer = SelfAttentionScorer(epochs=epochs, validation_users=0, threads=threads, **settings)
    scorer.fit(data)
    assert scorer.train_log is not None
    return scorer.train_log.seconds / epochs


def cost_curve(sizes: list[int], events: int, dim: int, threads: int, full_up_to: int) -> list[dict[str, object]]:
    """Training seconds per 1,000 events at each catalog size, same event count for all."""
    users = max(1, events // 100)
    rows = []
    for items in sizes:
        data = synthetic_log(items, users, 100, dim, seed=1)
        per_k = 1000.0 / sum(len(s) for s in data.sequences)
        row: dict[str, object] = {"items": items, "events": int(sum(len(s) for s in data.sequences))}
        default = SelfAttentionScorer.Config().full_softmax_items
        row["default"] = "full softmax" if items <= default else "sampled"
        row["default_seconds_per_1k_events"] = round(seconds_per_epoch(data, 1, threads) * per_k, 4)
        sampled = seconds_per_epoch(data, 1, threads, full_softmax_items=0)
        row["sampled_seconds_per_1k_events"] = round(sampled * per_k, 4)
        if items <= full_up_to:
            full = seconds_per_epoch(data, 1, threads, full_softmax_items=items)
            row["full_softmax_seconds_per_1k_events"] = round(full * per_k, 4)
        rows.append(row)
    smallest = float(rows[0]["default_seconds_per_1k_events"])  # type: ignore[arg-type]
    for row in rows:
        row["default_vs_smallest_catalog"] = round(float(row["default_seconds_per_1k_events"]) / smallest, 2)  # type: ignore[arg-type]
    return rows


def best_of(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def output_layer_pass(positions: int, items: int, dim: int, threads: int) -> float:
    """One forward + backward of the full-softmax output layer over ``positions`` positions."""
    import torch

    torch.set_num_threads(threads)
    hidden = torch.randn(positions, dim, requires_grad=True)
    table = torch.randn(items, dim, requires_grad=True)
    target = torch.randint(0, items, (positions,))
    start = time.perf_counter()
    for chunk in range(0, positions, 8192):
        loss = torch.nn.functional.cross_entropy(hidden[chunk : chunk + 8192] @ table.T, target[chunk : chunk + 8192])
        loss.backward()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1700)
    parser.add_argument("--users", type=int, default=950)
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--dim", type=int, default=448, help="fused vector size (MiniLM 384 + behavior 64)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--curve", default="2000,10000,100000", help="catalog sizes of the cost curve ('' : skip)")
    parser.add_argument("--curve-events", type=int, default=50_000)
    parser.add_argument("--full-up-to", type=int, default=10_000, help="largest catalog trained with a full softmax")
    args = parser.parse_args()

    data = synthetic_log(args.items, args.users, args.length, args.dim)
    import torch

    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])  # one-time imports (torch._dynamo) off the clock
    scorer = SelfAttentionScorer(epochs=args.epochs, validation_users=0, threads=args.threads)
    scorer.fit(data)
    assert scorer.train_log is not None
    epoch = scorer.train_log.seconds / args.epochs
    sampled_epoch = seconds_per_epoch(data, args.epochs, args.threads, full_softmax_items=0)
    positions = sum(len(s) - 1 for s in data.sequences)
    output_layer = output_layer_pass(positions, args.items, scorer.config.dim, args.threads)

    histories = [
        History([data.item_ids[i] for i in s[-50:]], data.item_vectors[s[-50:]], np.arange(len(s[-50:]), dtype=float))
        for s in data.sequences
    ]
    dot = DotScorer()
    batched = best_of(args.repeat, lambda: scorer.score_batch(histories, data.item_ids, data.item_vectors))
    dot_loop = best_of(
        args.repeat, lambda: [dot.score(h, data.item_ids, data.item_vectors) for h in histories]
    )  # fmt: skip
    own_loop = best_of(1, lambda: [scorer.score(h, data.item_ids, data.item_vectors) for h in histories])
    report = {
        "events": int(sum(len(s) for s in data.sequences)),
        "items": args.items,
        "threads": args.threads,
        "train_seconds_per_epoch": round(epoch, 3),
        "sampled_softmax_seconds_per_epoch": round(sampled_epoch, 3),
        "sampled_vs_default_epoch": round(sampled_epoch / epoch, 2),
        "output_layer_pass_seconds": round(output_layer, 3),
        "epoch_vs_output_layer_pass": round(epoch / output_layer, 2),
        "score_batch_seconds_all_users": round(batched, 3),
        "dot_score_loop_seconds_all_users": round(dot_loop, 3),
        "score_batch_vs_dot_loop": round(batched / dot_loop, 2),
        "score_loop_vs_score_batch": round(own_loop / batched, 2),
    }
    if args.curve:
        sizes = [int(size) for size in args.curve.split(",")]
        report["cost_curve"] = cost_curve(sizes, args.curve_events, args.dim, args.threads, args.full_up_to)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
