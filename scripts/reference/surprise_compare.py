#!/usr/bin/env python3
"""Surprise reference numbers on exactly CineMatch's stored train/test split.

Reads the `ratings` table of a CineMatch SQLite database (written by
`cinematch load`) with Python's sqlite3 module, trains Surprise on the rows
whose data_split is 'train' and evaluates RMSE on the rows whose data_split
is 'test'. Prints one JSON object per line:

  {"name": ..., "rmse": ..., "fit_seconds": ..., "random_state": ...}

Surprise's SVD draws its initial factors from numpy's global RNG unless
random_state is given; we always pass it (42 first, then 0..3 for the mean
over five seeds), so the numbers are reproducible.

SVD++ (SVDpp(), its defaults: 20 factors, 20 epochs, lr 0.007, reg 0.02,
random_state 42) is slow (about a minute on ml-latest-small), so it runs only with
--svdpp.

Usage: surprise_compare.py DB_FILE [--svd-seeds 42,0,1,2,3] [--no-knn] [--svdpp]
"""
import argparse
import json
import sqlite3
import sys
import time

try:
    import numpy as np
    import pandas as pd
    import surprise
    from surprise import SVD, SVDpp, BaselineOnly, Dataset, KNNBaseline, Reader, accuracy
except ImportError as e:  # pragma: no cover - reported by the shell script
    sys.exit(f"error: scikit-surprise is not importable: {e}")


def rows(db, split):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        cur = con.execute(
            "SELECT userId, movieId, rating FROM ratings WHERE data_split = ? "
            "ORDER BY userId, movieId",
            (split,),
        )
        return [(int(u), int(m), float(r)) for u, m, r in cur]
    finally:
        con.close()


def emit(**kv):
    print(json.dumps(kv), flush=True)


def run(name, algo, trainset, testset, **extra):
    t = time.perf_counter()
    algo.fit(trainset)
    fit_s = time.perf_counter() - t
    preds = algo.test(testset)
    rmse = accuracy.rmse(preds, verbose=False)
    emit(name=name, rmse=rmse, fit_seconds=round(fit_s, 3), **extra)
    return rmse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("--svd-seeds", default="42,0,1,2,3")
    ap.add_argument("--no-knn", action="store_true")
    ap.add_argument("--svdpp", action="store_true")
    a = ap.parse_args()

    train = rows(a.db, "train")
    test = rows(a.db, "test")
    if not train or not test:
        sys.exit(f"error: {a.db} has {len(train)} train and {len(test)} test ratings")
    emit(name="meta", surprise_version=surprise.__version__, numpy_version=np.__version__,
         pandas_version=pd.__version__, python_version=sys.version.split()[0],
         train_rows=len(train), test_rows=len(test))

    df = pd.DataFrame(train, columns=["userId", "movieId", "rating"])
    data = Dataset.load_from_df(df, Reader(rating_scale=(0.5, 5.0)))
    trainset = data.build_full_trainset()
    testset = test  # (raw uid, raw iid, true rating)

    # BaselineOnly with its defaults: ALS, reg_u=15, reg_i=10, n_epochs=10.
    run("surprise BaselineOnly", BaselineOnly(verbose=False), trainset, testset)

    # SVD with its defaults (100 factors, 20 epochs, lr 0.005, reg 0.02,
    # init N(0, 0.1^2), biased), one fit per random_state.
    seeds = [int(s) for s in a.svd_seeds.split(",") if s]
    scores = []
    for s in seeds:
        scores.append(run("surprise SVD", SVD(random_state=s), trainset, testset,
                          random_state=s))
    if len(scores) > 1:
        mean = sum(scores) / len(scores)
        sd = (sum((x - mean) ** 2 for x in scores) / (len(scores) - 1)) ** 0.5
        emit(name="surprise SVD mean", rmse=mean, sd=sd, seeds=seeds,
             min=min(scores), max=max(scores))

    if not a.no_knn:
        algo = KNNBaseline(sim_options={"name": "pearson_baseline", "user_based": False},
                           verbose=False)
        run("surprise KNNBaseline item pearson_baseline", algo, trainset, testset)

    if a.svdpp:
        run("surprise SVD++", SVDpp(random_state=42), trainset, testset, random_state=42)


if __name__ == "__main__":
    main()
