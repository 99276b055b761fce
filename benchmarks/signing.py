"""Signing texts for near copies: the worker's MinHash (CRC-32 per shingle, datasketch's affine32 scheme) beside
datasketch's default (SHA-1 per shingle, computed in Python), on the same texts, in one run, alternated.

Also the floor no hash function removes: cutting the texts into their shingles alone. Both signatures estimate the
same Jaccard similarities; benchmarks/near_copies.py measures the pairs the worker finds with its own.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/signing.py [--texts 10000] [--rounds 3]

Writes benchmarks/results/signing.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from datasketch import MinHash

from benchmarks._shared import write_results
from worker.demo_data import load_movie_snippets
from worker.duplicates import PERMUTATIONS, shingles, signatures


def sha1_signatures(texts: list[tuple[str, None]]) -> np.ndarray:
    """[N, PERMUTATIONS]: datasketch's default hash (SHA-1) on the worker's shingles."""
    hashes = MinHash.bulk([list(shingles(text, pair)) for text, pair in texts], num_perm=PERMUTATIONS)
    return np.stack([minhash.hashvalues for minhash in hashes])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    snippets = load_movie_snippets()
    texts = [(snippets[index % len(snippets)].text, None) for index in range(args.texts)]
    paths = {"shingles only": lambda: [shingles(text, pair) for text, pair in texts],
             "SHA-1 (datasketch's default)": lambda: sha1_signatures(texts),
             "CRC-32 (the worker)": lambda: signatures(texts)}
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name, run in paths.items():
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)
    best = {name: min(values) for name, values in seconds.items()}
    base = best["SHA-1 (datasketch's default)"]
    lines = [f"{args.texts} movie snippets, best of {args.rounds} alternated rounds", "",
             "| path | seconds | texts/s | × SHA-1 |", "|---|---:|---:|---:|",
             *(f"| {name} | {value:.2f} | {args.texts / value:,.0f} | {base / value:.2f} |"
               for name, value in best.items())]
    write_results("signing", {"texts": args.texts, "seconds": seconds, "best": best,
                              "median": {name: statistics.median(values) for name, values in seconds.items()}}, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
