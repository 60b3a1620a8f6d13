#!/usr/bin/env python3
"""Reference side of scripts/bench/ranking.sh: lists that CineMatch's ranking
models are compared with, each scored here, independently of the Rust code,
on the train/test files that script exports from a `cinematch load`
(lines `user,movie,rating,timestamp`, no header). Prints one JSON object.

  ranking_reference.py most-rated TRAIN TEST
      The same list for everyone: the movies with the most train ratings
      (ties by movieId), minus each user's train movies.

  ranking_reference.py ease TRAIN TEST [--lambda 300] [--signal weighted]
                       [--rounds 3]
      EASE (Steck 2019) as the paper's code writes it: G = X'X + lambda I,
      P = inv(G), B = -P / diag(P), diag(B) = 0, scores = X B; numpy float64.
      lambda is relative, as CineMatch's: multiplied by mean(x^2) over the
      observed cells. Fit seconds count G, the inverse and B.

  ranking_reference.py ials TRAIN TEST [--factors 128] [--iterations 15]
                       [--reg 50] [--alpha 1.7] [--signal weighted]
                       [--threads 2] [--cholesky]
      implicit 0.7.3's AlternatingLeastSquares (Hu, Koren, Volinsky 2008) on
      CineMatch's objective: implicit weighs an observed cell alpha * x, so it
      is given x = 1 + alpha * w with its own alpha = 1 (CineMatch's
      confidence 1 + alpha * w; w from the signal). Times model.fit.

  ranking_reference.py lists NAME FILE TRAIN TEST
      Scores lists another program wrote (lines `user,movie,movie,...`,
      best first), e.g. CineMatch's models bench (`RANK_LISTS=FILE`).

  ranking_reference.py server BASE_URL TRAIN TEST [--k 10] [--token T]
      End to end: asks a running `cinematch serve` at BASE_URL for
      /api/users/{id}/recommendations?k=10 for every test user and scores the
      answers. The server must hold only the train rows.

Signals (CineMatch's `--signal`): all (w = 1), weighted (w = stars),
>=T (w = 1 for ratings of at least T stars, others dropped).

Protocol (the project's full-catalogue metrics, written here from their
textbook definitions): catalogue = the movies in TRAIN; each user's TRAIN
movies are removed from their ranking; relevant = a TEST rating >= 4.0;
ranked users = users with a relevant TEST rating who have TRAIN ratings;
top 10 by score, ties by movieId ascending; P@10 = hits / 10,
recall@10 = hits / #relevant, NDCG@10 = sum hit_i / log2(i + 2) over the
ideal sum for min(10, #relevant) hits (binary gains); each averaged over the
ranked users.
"""
import argparse
import json
import math
import os
import sys
import time
import urllib.request
from collections import defaultdict

# implicit parallelizes itself (BLAS inside must be single-threaded); numpy's
# EASE gets the cores through BLAS.
if len(sys.argv) > 1 and sys.argv[1] == "ials":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

K = 10
RELEVANT = 4.0


def read(path):
    rows = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    return rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64), rows[:, 2]


def signal(r, kind):
    if kind == "all":
        return np.ones_like(r)
    if kind == "weighted":
        return r.copy()
    if kind.startswith(">="):
        return np.where(r >= float(kind[2:]), 1.0, 0.0)
    raise SystemExit(f"error: unknown signal {kind!r} (all, weighted or >=T)")


class Protocol:
    """Train and test as the metric sees them."""

    def __init__(self, train_path, test_path):
        self.tu, self.tm, self.tr = read(train_path)
        eu, em, er = read(test_path)
        self.seen = defaultdict(set)
        for u, m in zip(self.tu.tolist(), self.tm.tolist()):
            self.seen[u].add(m)
        self.relevant = defaultdict(set)
        for u, m, r in zip(eu.tolist(), em.tolist(), er.tolist()):
            if r >= RELEVANT:
                self.relevant[u].add(m)
        self.users = sorted(u for u in self.relevant if u in self.seen)
        self.movies = np.unique(self.tm)

    def score(self, lists):
        """lists: user -> ranked movie ids (at least the top 10 unseen)."""
        ndcg = recall = prec = 0.0
        for u in self.users:
            rel = self.relevant[u]
            top = [m for m in lists.get(u, []) if m not in self.seen[u]][:K]
            hits = [1.0 if m in rel else 0.0 for m in top]
            dcg = sum(h / math.log2(i + 2) for i, h in enumerate(hits))
            ideal = sum(1.0 / math.log2(i + 2) for i in range(min(K, len(rel))))
            ndcg += dcg / ideal
            recall += sum(hits) / len(rel)
            prec += sum(hits) / K
        n = len(self.users)
        return {"ndcg_at_10": ndcg / n, "recall_at_10": recall / n,
                "p_at_10": prec / n, "users_ranked": n}

    def top_from_scores(self, scores, user_index, movie_ids):
        """Top-10 unseen movies per ranked user from a dense score matrix
        (rows = user_index[u]); ties by movieId (movie_ids is ascending)."""
        lists = {}
        col = {m: j for j, m in enumerate(movie_ids.tolist())}
        for u in self.users:
            s = scores[user_index[u]].astype(np.float64).copy()
            for m in self.seen[u]:
                s[col[m]] = -np.inf
            # Stable sort on -score keeps ascending movieId among ties.
            order = np.argsort(-s, kind="stable")[:K]
            lists[u] = movie_ids[order].tolist()
        return lists

    def matrix(self, kind, dtype=np.float64):
        """Dense users x movies signal matrix (train) and its index maps."""
        users = np.unique(self.tu)
        ui = np.searchsorted(users, self.tu)
        mi = np.searchsorted(self.movies, self.tm)
        w = signal(self.tr, kind)
        keep = w > 0
        return users, ui[keep], mi[keep], w[keep].astype(dtype)


def emit(**kv):
    print(json.dumps(kv), flush=True)


def most_rated(a):
    p = Protocol(a.train, a.test)
    ids, counts = np.unique(p.tm, return_counts=True)
    order = np.lexsort((ids, -counts))
    ranked = ids[order].tolist()
    # Enough to fill ten after removing anyone's train movies.
    lists = {u: [m for m in ranked if m not in p.seen[u]][:K] for u in p.users}
    emit(name="most-rated list", **p.score(lists))


def ease(a):
    p = Protocol(a.train, a.test)
    users, ui, mi, w = p.matrix(a.signal)
    n_users, n_items = len(users), len(p.movies)
    X = np.zeros((n_users, n_items))
    X[ui, mi] = w
    lam = a.lam * float(np.mean(w * w))
    secs = []
    for _ in range(a.rounds):
        t = time.perf_counter()
        G = X.T @ X
        G[np.diag_indices(n_items)] += lam
        P = np.linalg.inv(G)
        B = P / (-np.diag(P))
        B[np.diag_indices(n_items)] = 0.0
        secs.append(time.perf_counter() - t)
    scores = X @ B
    index = {u: i for i, u in enumerate(users.tolist())}
    lists = p.top_from_scores(scores, index, p.movies)
    emit(name="numpy EASE (float64 inv)", numpy=np.__version__, items=n_items,
         fit_seconds=secs, params={"lambda": a.lam, "signal": a.signal}, **p.score(lists))


def ials(a):
    import implicit
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares

    p = Protocol(a.train, a.test)
    users, ui, mi, w = p.matrix(a.signal, np.float32)
    conf = (1.0 + a.alpha * w).astype(np.float32)
    user_items = sp.csr_matrix((conf, (ui, mi)), shape=(len(users), len(p.movies)))
    model = AlternatingLeastSquares(factors=a.factors, iterations=a.iterations,
                                    regularization=a.reg, alpha=1.0,
                                    use_cg=not a.cholesky, num_threads=a.threads,
                                    calculate_training_loss=False, random_state=42)
    t = time.perf_counter()
    model.fit(user_items, show_progress=False)
    secs = time.perf_counter() - t
    scores = np.asarray(model.user_factors) @ np.asarray(model.item_factors).T
    index = {u: i for i, u in enumerate(users.tolist())}
    lists = p.top_from_scores(scores, index, p.movies)
    emit(name=f"implicit iALS ({'cholesky' if a.cholesky else 'cg'})",
         version=implicit.__version__, threads=a.threads, fit_seconds=[secs],
         params={"factors": a.factors, "iterations": a.iterations, "reg": a.reg,
                 "alpha": a.alpha, "signal": a.signal}, **p.score(lists))


def lists(a):
    p = Protocol(a.train, a.test)
    out = {}
    with open(a.file) as f:
        for line in f:
            ids = [int(x) for x in line.strip().split(",") if x]
            if ids:
                out[ids[0]] = ids[1:]
    emit(name=a.name, **p.score(out))


def server(a):
    p = Protocol(a.train, a.test)
    lists, strategies = {}, defaultdict(int)
    t = time.perf_counter()
    for u in p.users:
        req = urllib.request.Request(f"{a.base_url}/api/users/{u}/recommendations?k={K}")
        if a.token:
            req.add_header("Authorization", f"Bearer {a.token}")
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = json.load(resp)
        items = body.get("recommendations", body.get("items", []))
        lists[u] = [int(x["movieId"]) for x in items]
        strategies[body.get("strategy", "?")] += 1
    secs = time.perf_counter() - t
    emit(name="cinematch serve, end to end", requests=len(p.users), seconds=secs,
         strategies=dict(strategies), **p.score(lists))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("most-rated", "ease", "ials"):
        s = sub.add_parser(name)
        s.add_argument("train")
        s.add_argument("test")
        s.add_argument("--signal", default="weighted")
        if name == "ease":
            s.add_argument("--lambda", dest="lam", type=float, default=300.0)
            s.add_argument("--rounds", type=int, default=3)
        if name == "ials":
            s.add_argument("--factors", type=int, default=128)
            s.add_argument("--iterations", type=int, default=15)
            s.add_argument("--reg", type=float, default=50.0)
            s.add_argument("--alpha", type=float, default=1.7)
            s.add_argument("--threads", type=int, default=2)
            s.add_argument("--cholesky", action="store_true")
    s = sub.add_parser("lists")
    s.add_argument("name")
    s.add_argument("file")
    s.add_argument("train")
    s.add_argument("test")
    s = sub.add_parser("server")
    s.add_argument("base_url")
    s.add_argument("train")
    s.add_argument("test")
    s.add_argument("--token")
    a = ap.parse_args()
    try:
        {"most-rated": most_rated, "ease": ease, "ials": ials, "lists": lists,
         "server": server}[a.cmd](a)
    except ImportError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
