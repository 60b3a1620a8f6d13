#!/usr/bin/env python3
"""Reference libraries' side of scripts/bench/models.sh, on the train/test
files that script exports from a `cinematch load` (lines `user,movie,rating`,
no header). Prints one JSON object per line.

  bench_reference.py surprise-svd TRAIN TEST [--rounds 1]
      scikit-surprise SVD() with its defaults (100 factors, 20 epochs, lr
      0.005, reg 0.02, init N(0, 0.1^2), biased; single-threaded, Surprise has
      no threads option), random_state=42. Times algo.fit(trainset) only:
      building the trainset is not counted. RMSE of algo.test(test).

  bench_reference.py implicit-als TRAIN TEST [--factors 64] [--iterations 15]
                     [--threads 2] [--cg | --cholesky]
      implicit's CPU AlternatingLeastSquares on the same user x movie matrix,
      ratings as confidences. Times model.fit(user_items) and each iteration
      (fit callback), and the peak memory the fit adds (VmHWM after minus
      VmRSS before, the high-water mark reset through /proc/self/clear_refs).
      implicit solves a different problem (implicit feedback: every one of
      the users x movies cells enters the loss, no biases, float32), so only
      the speed is comparable, not the RMSE (not reported).
"""
import argparse
import json
import os
import sys
import time

# implicit wants single-threaded BLAS (it parallelizes itself).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def read(path):
    return pd.read_csv(path, header=None, names=["userId", "movieId", "rating"],
                       dtype={"userId": np.int64, "movieId": np.int64, "rating": np.float64})


def emit(**kv):
    print(json.dumps(kv), flush=True)


def status_bytes(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return None


def surprise_svd(a):
    import surprise
    from surprise import SVD, Dataset, Reader, accuracy

    train, test = read(a.train), read(a.test)
    data = Dataset.load_from_df(train, Reader(rating_scale=(0.5, 5.0)))
    trainset = data.build_full_trainset()
    testset = list(test.itertuples(index=False, name=None))
    secs, rmse = [], None
    for _ in range(a.rounds):
        algo = SVD(random_state=42)
        t = time.perf_counter()
        algo.fit(trainset)
        secs.append(time.perf_counter() - t)
        rmse = accuracy.rmse(algo.test(testset), verbose=False)
    emit(name="surprise SVD", version=surprise.__version__, threads=1,
         train_rows=len(train), fit_seconds=secs, rmse=rmse)


def implicit_als(a):
    import implicit
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares

    train = read(a.train)
    users, u = np.unique(train.userId.to_numpy(), return_inverse=True)
    movies, m = np.unique(train.movieId.to_numpy(), return_inverse=True)
    user_items = sp.csr_matrix(
        (train.rating.to_numpy(dtype=np.float32), (u, m)),
        shape=(len(users), len(movies)))
    model = AlternatingLeastSquares(factors=a.factors, iterations=a.iterations,
                                    use_cg=not a.cholesky, num_threads=a.threads,
                                    random_state=42)
    marks = []
    reset = True
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        reset = False
    before = status_bytes("VmRSS:")
    t = time.perf_counter()
    model.fit(user_items, show_progress=False,
              callback=lambda it, elapsed, loss: marks.append(time.perf_counter()))
    total = time.perf_counter() - t
    hwm = status_bytes("VmHWM:")
    iters = [b - a_ for a_, b in zip([t] + marks[:-1], marks)]
    emit(name=f"implicit als ({'cholesky' if a.cholesky else 'cg, 3 steps'})",
         version=implicit.__version__, threads=a.threads, train_rows=len(train),
         factors=a.factors, iterations=a.iterations, fit_seconds=total,
         iteration_seconds=iters, peak_rss_bytes=hwm, rss_before_fit_bytes=before,
         peak_added_bytes=(hwm - before) if reset and hwm and before else None)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("surprise-svd")
    s.add_argument("train")
    s.add_argument("test")
    s.add_argument("--rounds", type=int, default=1)
    i = sub.add_parser("implicit-als")
    i.add_argument("train")
    i.add_argument("test")
    i.add_argument("--factors", type=int, default=64)
    i.add_argument("--iterations", type=int, default=15)
    i.add_argument("--threads", type=int, default=2)
    g = i.add_mutually_exclusive_group()
    g.add_argument("--cg", action="store_true", help="conjugate gradient (default)")
    g.add_argument("--cholesky", action="store_true", help="exact solves, like CineMatch")
    a = ap.parse_args()
    try:
        {"surprise-svd": surprise_svd, "implicit-als": implicit_als}[a.cmd](a)
    except ImportError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
