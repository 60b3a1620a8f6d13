#!/usr/bin/env python3
"""The operator's replay of issue 17, scored outside the project.

`cinematch data stream` cuts a MovieLens release into a history and weekly
batches; the history is loaded (seed 42) and the default model trained;
then, each week, `cinematch serve` is started, every user who rates in
that week's batch is asked for `/api/users/{id}/recommendations?k=10`, the
list is scored here (NDCG@10, binary gains, on the movies that user rated
4.0 or more that week and had not rated before), the server is stopped and
`cinematch pipeline run` takes the batch. Beside it, a most-rated list and
a trending list (the latest quarter of the history's ratings) are counted
here from the same files. Standard library only; only loopback is used.

usage: replay.py CINEMATCH_BINARY DATA_DIR [--weeks 6] [--history-fraction 0.8]
"""
import argparse
import csv
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict


def ndcg(top, rel, k=10):
    dcg = sum(1 / math.log2(i + 2) for i, m in enumerate(top[:k]) if m in rel)
    idcg = sum(1 / math.log2(i + 2) for i in range(min(len(rel), k)))
    return dcg / idcg


def read(path):
    with open(path, newline="") as f:
        return [
            (int(r["userId"]), int(r["movieId"]), float(r["rating"]), int(r["timestamp"]))
            for r in csv.DictReader(f)
        ]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(url):
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("data")
    ap.add_argument("--weeks", type=int, default=6)
    ap.add_argument("--history-fraction", type=float, default=0.8)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="cinematch-replay-")
    db = f"sqlite://{work}/replay.db"
    env = dict(os.environ, CINEMATCH_LOG="warn")
    env.pop("CINEMATCH_API_TOKEN", None)
    env.pop("MLFLOW_TRACKING_URI", None)

    def run(*args):
        subprocess.run([a.binary, "-q", "--db", db, *args], check=True, env=env,
                       stdout=subprocess.DEVNULL)

    stream = f"{work}/stream"
    subprocess.run([a.binary, "-q", "data", "stream", a.data, "--out", stream,
                    "--weeks", str(a.weeks), "--history-fraction", str(a.history_fraction)],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    run("load", stream, "--seed", "42")
    run("train")
    known = read(f"{stream}/ratings.csv")
    trending_window = round(len(known) * 0.25)
    sums = defaultdict(lambda: defaultdict(list))
    for w in range(1, a.weeks + 1):
        batch = read(f"{stream}/batches/batch_w{w}.csv")
        rated = defaultdict(set)
        for u, m, _, _ in known:
            rated[u].add(m)
        relevant = defaultdict(set)
        for u, m, r, _ in batch:
            if r >= 4.0 and m not in rated[u]:
                relevant[u].add(m)
        counts = Counter(m for _, m, _, _ in known)
        most = [m for m, _ in sorted(counts.items(), key=lambda p: (-p[1], p[0]))]
        ordered = sorted(known, key=lambda r: (r[3], r[0], r[1]))
        tcounts = Counter(m for _, m, _, _ in ordered[-trending_window:])
        trend = [m for m, _ in sorted(tcounts.items(), key=lambda p: (-p[1], p[0]))]
        port = free_port()
        server = subprocess.Popen([a.binary, "-q", "--db", db, "serve", "--addr",
                                   f"127.0.0.1:{port}"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(600):
                try:
                    if get(f"{base}/readyz").get("ready"):
                        break
                except Exception:
                    pass
                time.sleep(0.1)
            for u, rel in relevant.items():
                group = "returning" if rated[u] else "new"
                items = get(f"{base}/api/users/{u}/recommendations?k=10")["items"]
                served = [i["movieId"] for i in items]
                for name, top in [("served", served),
                                  ("most-rated", [m for m in most if m not in rated[u]][:10]),
                                  ("trending", [m for m in trend if m not in rated[u]][:10])]:
                    score = ndcg(top, rel)
                    sums[name][(w, "all")].append(score)
                    sums[name][(w, group)].append(score)
        finally:
            server.terminate()
            server.wait()
        run("pipeline", "run", "--batch", f"{stream}/batches/batch_w{w}.csv",
            "--batch-id", f"batch_w{w}")
        known.extend(batch)
    print(f"replay of {a.data}: {a.weeks} weeks after the earliest {a.history_fraction:.0%}; "
          "mean over weeks of NDCG@10 (x most-rated)")
    means = {}
    for name in ["served", "most-rated", "trending"]:
        means[name] = {}
        for g in ["all", "returning", "new"]:
            weekly = [sum(v) / len(v) for (w, gg), v in sums[name].items() if gg == g and v]
            means[name][g] = sum(weekly) / len(weekly) if weekly else float("nan")
    for name in means:
        print(f"  {name:10s} " + "  ".join(
            f"{g} {means[name][g]:.4f} ({means[name][g] / means['most-rated'][g]:.2f}x)"
            for g in ["all", "returning", "new"]))


if __name__ == "__main__":
    sys.exit(main())
