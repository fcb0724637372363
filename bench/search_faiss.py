"""FAISS baseline for `npm run bench:search`: IndexBinaryFlat (exact Hamming) on the same
packed codes, single-query searches. Prints one JSON object on stdout.

Run with the worker's Python (scripts/worker-env); bench/search.ts calls it.
"""

from __future__ import annotations

import argparse
import json
import time

import faiss
import numpy as np


def main() -> None:
    """Times k-nearest searches of each query code, one query at a time, per thread count."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--codes", required=True, help="packed binary codes, N x bytes, uint8")
    p.add_argument("--queries", required=True, help="packed query codes, Q x bytes, uint8")
    p.add_argument("--bytes", type=int, required=True, help="bytes per code (dimension / 8)")
    p.add_argument("--k", type=int, required=True, help="neighbours per query")
    p.add_argument("--repeat", type=int, default=4, help="passes over the queries (the first is a warm-up)")
    p.add_argument("--threads", default="1", help="comma-separated OpenMP thread counts to time")
    args = p.parse_args()

    codes = np.fromfile(args.codes, dtype=np.uint8).reshape(-1, args.bytes)
    queries = np.fromfile(args.queries, dtype=np.uint8).reshape(-1, args.bytes)
    index = faiss.IndexBinaryFlat(args.bytes * 8)
    index.add(codes)
    out: dict[str, object] = {"n": int(codes.shape[0]), "faiss": faiss.__version__}
    for threads in (int(t) for t in args.threads.split(",")):
        faiss.omp_set_num_threads(threads)
        times: list[float] = []
        for rep in range(args.repeat):
            for q in queries:
                t0 = time.perf_counter()
                distances, _ = index.search(q[None, :], args.k)
                elapsed = (time.perf_counter() - t0) * 1000
                if rep > 0:
                    times.append(elapsed)
        out[f"threads_{threads}_ms"] = times
    # The distances of the top k for the first queries: the JS side checks it found the same.
    faiss.omp_set_num_threads(1)
    distances, _ = index.search(queries[:10], args.k)
    out["distances"] = distances.tolist()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
