"""Phase B of a recall under `--explore thompson`: its time by pool size.

    python -m memrl_clients.bench.thompson [--pools 5,15,50] [--k2 3] [--repeat 300]

Phase B is `retrieval.select`: score the pool, choose the injected set and record the
probability of that set. With Thompson sampling the probability has no closed form and is
estimated from THOMPSON_DRAWS further draws of the utilities, which is most of the time.
Pools are the sizes phase A hands over: k1 = 5 intents of up to PER_INTENT = 10 memories
each, so 5 to 50 candidates. For each size it prints the p50 and p95 of `select` with
Thompson sampling, and beside them the same pool with UCB (no estimate: the floor of
phase B), in microseconds. It prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from memrl.learning import posterior_sd
from memrl.retrieval import Candidate, select


def pool_of(n: int, seed: int) -> list[Candidate]:
    """A pool of `n` memories with mixed similarity, Q and evidence."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        s, f = rng.randint(0, 20), rng.randint(0, 20)
        out.append(Candidate(i + 1, rng.uniform(0.5, 0.95), rng.uniform(-1, 1), posterior_sd(s, f)))
    return out


def timings(pool: list[Candidate], k2: int, explore: str, repeat: int) -> list[float]:
    rng = random.Random(1)
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        select(pool, 0.5, k2, 0.1, rng, explore, 2.0)
        out.append((time.perf_counter() - start) * 1e6)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pools", default="5,15,50", help="pool sizes, comma-separated")
    p.add_argument("--k2", type=int, default=3)
    p.add_argument("--repeat", type=int, default=300, help="select calls timed per size")
    args = p.parse_args(argv)
    print(f"phase B (retrieval.select), k2={args.k2}, {args.repeat} calls a size, microseconds")
    print(f"{'pool':>5} {'thompson p50':>13} {'p95':>9} {'ucb p50':>9}")
    for n in (int(x) for x in args.pools.split(",")):
        pool = pool_of(n, n)
        timings(pool, args.k2, "thompson", 20)  # warm up (imports, caches)
        thompson = timings(pool, args.k2, "thompson", args.repeat)
        ucb = timings(pool, args.k2, "ucb", args.repeat)
        p95 = statistics.quantiles(thompson, n=20)[-1]
        print(f"{n:>5} {statistics.median(thompson):>13.0f} {p95:>9.0f} "
              f"{statistics.median(ucb):>9.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
