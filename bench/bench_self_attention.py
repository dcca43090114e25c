"""Training and scoring speed of the ``self-attention`` scorer, against baselines run alongside.

A synthetic log the size of MovieLens-100k (``--items`` items, ``--users`` users with
about ``--length`` events each, a random walk over item neighbourhoods so there is
something to learn) and random ``--dim``-d item vectors.

(a) Training: seconds per epoch of ``fit`` (``--epochs`` epochs, early stopping off), and
    the same per epoch divided by the time of one plain pass of the output layer alone
    (a (positions x dim) @ (dim x items) product, its softmax cross-entropy and backward
    over the same number of positions): the share of the epoch the transformer, the
    batching and the seen-item masks add on top of the unavoidable full-softmax work.
(b) Scoring the whole catalog for every user, as the evaluator does: ``score_batch``
    (batched transformer) vs the ``dot`` scorer's per-user ``score`` loop on the same
    histories and items, and vs one ``score`` call per user of this scorer.

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
    args = parser.parse_args()

    data = synthetic_log(args.items, args.users, args.length, args.dim)
    import torch

    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])  # one-time imports (torch._dynamo) off the clock
    scorer = SelfAttentionScorer(epochs=args.epochs, validation_users=0, threads=args.threads)
    start = time.perf_counter()
    scorer.fit(data)
    epoch = (time.perf_counter() - start) / args.epochs
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
        "output_layer_pass_seconds": round(output_layer, 3),
        "epoch_vs_output_layer_pass": round(epoch / output_layer, 2),
        "score_batch_seconds_all_users": round(batched, 3),
        "dot_score_loop_seconds_all_users": round(dot_loop, 3),
        "score_batch_vs_dot_loop": round(batched / dot_loop, 2),
        "score_loop_vs_score_batch": round(own_loop / batched, 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
