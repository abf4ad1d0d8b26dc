"""Reference logistic regression for transfer's probe tests: scikit-learn's LogisticRegression
fitted to convergence on features written by the Rust test.

usage: logistic.py IN.safetensors C OUT.json

IN holds train_x [n, d] (float), train_y [n] (int64) and optionally test_x, test_y. Writes
{"coef": [[...]], "intercept": [...], "classes": [...], "train_accuracy": a, "test_accuracy": a}
(test_accuracy only with a test set). C is scikit-learn's inverse regularisation strength: the
objective is C * sum_i CE_i + 1/2 ||W||^2 (bias not penalised).
"""

import json
import sys

import numpy as np
from safetensors.numpy import load_file
from sklearn.linear_model import LogisticRegression


def main():
    src, c, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    t = load_file(src)
    x, y = t["train_x"].astype(np.float64), t["train_y"]
    model = LogisticRegression(C=c, tol=1e-10, max_iter=100000)
    model.fit(x, y)
    result = {
        "coef": model.coef_.tolist(),
        "intercept": model.intercept_.tolist(),
        "classes": model.classes_.tolist(),
        "train_accuracy": float(model.score(x, y)),
        "iterations": int(np.max(model.n_iter_)),
    }
    if "test_x" in t:
        result["test_accuracy"] = float(
            model.score(t["test_x"].astype(np.float64), t["test_y"])
        )
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
