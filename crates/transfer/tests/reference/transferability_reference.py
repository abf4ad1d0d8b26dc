"""Reference values for tests/transferability.rs, computed with NumPy.

Run with the project environment's Python:
    .cache/torch-venv/bin/python crates/transfer/tests/reference/transferability_reference.py \
        > crates/transfer/tests/reference/transferability.json

LogME is written from the paper (You et al., ICML 2021, Algorithm 1), using its naive branch:
A = alpha I + beta F^T F is formed and solved directly, log|A| comes from slogdet, gamma from the
eigenvalues of F^T F (all D of them, zeros included). The Rust code uses the SVD shortcut
instead, so agreement checks the algebra as well as the arithmetic. Both start at alpha = beta = 1
and stop once t = alpha / beta changes by less than 1e-3 (relative) or after 11 updates; the
evidence is then evaluated at the final (alpha, beta) with m recomputed for them.

LEEP follows Nguyen et al. 2020; H-score follows Bao et al. 2019 with biased (1/N) covariances
and a pseudo-inverse of cov(f) that drops eigenvalues below 1e-10 times the largest. The
shrinkage H-score follows Ibrahim et al. 2022: tr(inv(S_a) (1 - a) cov_g) with
S_a = (1 - a) cov_f + a (tr cov_f / D) I and a from scikit-learn's ledoit_wolf_shrinkage (needs
scikit-learn, which librosa brings into the project environment).

Features are rounded to float32 so the JSON values are exact in both languages.
"""
import json

import numpy as np
from sklearn.covariance import ledoit_wolf_shrinkage

RNG = np.random.default_rng(20240611)
TOL = 1e-3
MAX_ITERS = 11
RCOND = 1e-10


def f32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def labels_with_every_class(n, classes):
    y = np.concatenate([np.arange(classes), RNG.integers(0, classes, n - classes)])
    RNG.shuffle(y)
    return y


def logme(F, y, classes):
    N, D = F.shape
    FtF = F.T @ F
    sigma = np.linalg.eigvalsh(FtF)  # D values; N < D leaves D - N (near) zeros
    margin = np.inf  # closest any stopping test came to the threshold
    scores = []
    for k in range(classes):
        yk = (y == k).astype(np.float64)

        def fit(alpha, beta):
            A = alpha * np.eye(D) + beta * FtF
            m = beta * np.linalg.solve(A, F.T @ yk)
            gamma = np.sum(beta * sigma / (alpha + beta * sigma))
            return A, m, gamma

        alpha, beta = 1.0, 1.0
        for _ in range(MAX_ITERS):
            t = alpha / beta
            _, m, gamma = fit(alpha, beta)
            alpha = gamma / (m @ m)
            beta = (N - gamma) / np.sum((F @ m - yk) ** 2)
            change = abs(alpha / beta - t) / t
            margin = min(margin, abs(change - TOL) / TOL)
            if change < TOL:
                break
        A, m, _ = fit(alpha, beta)
        _, logdet = np.linalg.slogdet(A)
        evidence = (
            D / 2 * np.log(alpha)
            + N / 2 * np.log(beta)
            - alpha / 2 * (m @ m)
            - beta / 2 * np.sum((F @ m - yk) ** 2)
            - logdet / 2
            - N / 2 * np.log(2 * np.pi)
        )
        scores.append(evidence / N)
    return float(np.mean(scores)), float(margin)


def leep(theta, y, target_classes):
    N = theta.shape[0]
    onehot = np.eye(target_classes)[y]
    joint = onehot.T @ theta / N  # P(y, z)
    marginal = joint.sum(axis=0)  # P(z)
    cond = joint / marginal  # P(y | z)
    return float(np.mean(np.log(np.sum(cond[y] * theta, axis=1))))


def h_score(F, y, classes):
    N = F.shape[0]
    Fc = F - F.mean(axis=0)
    cov_f = Fc.T @ Fc / N
    g = np.zeros_like(F)
    for k in range(classes):
        g[y == k] = F[y == k].mean(axis=0)
    gc = g - g.mean(axis=0)
    cov_g = gc.T @ gc / N
    return float(np.trace(np.linalg.pinv(cov_f, rcond=RCOND, hermitian=True) @ cov_g))


def shrunk_h_score(F, y, classes):
    N, D = F.shape
    Fc = F - F.mean(axis=0)
    cov_f = Fc.T @ Fc / N
    a = float(ledoit_wolf_shrinkage(F))
    shrunk = (1 - a) * cov_f + a * np.trace(cov_f) / D * np.eye(D)
    g = np.zeros_like(F)
    for k in range(classes):
        g[y == k] = F[y == k].mean(axis=0)
    gc = g - g.mean(axis=0)
    cov_g = gc.T @ gc / N
    return float(np.trace(np.linalg.solve(shrunk, (1 - a) * cov_g))), a


def logme_case(n, d, classes, shift):
    y = labels_with_every_class(n, classes)
    means = RNG.normal(size=(classes, d)) * shift
    F = f32(RNG.normal(size=(n, d)) + means[y])
    score, margin = logme(F, y, classes)
    return {
        "n": n, "d": d, "classes": classes,
        "features": F.ravel().tolist(), "labels": y.tolist(),
        "logme": score, "stop_margin": margin,
    }


def leep_case(n, source_classes, target_classes):
    y = labels_with_every_class(n, target_classes)
    logits = RNG.normal(size=(n, source_classes)) * 2
    logits[:, :target_classes] += 2 * np.eye(target_classes)[y]  # some signal
    theta = np.exp(logits - logits.max(axis=1, keepdims=True))
    theta = f32(theta / theta.sum(axis=1, keepdims=True))
    theta /= theta.sum(axis=1, keepdims=True)  # exact rows after the f32 rounding
    return {
        "n": n, "source_classes": source_classes, "target_classes": target_classes,
        "probs": theta.ravel().tolist(), "labels": y.tolist(), "leep": leep(theta, y, target_classes),
    }


def h_score_case(n, d, classes, shift):
    y = labels_with_every_class(n, classes)
    means = RNG.normal(size=(classes, d)) * shift
    F = f32(RNG.normal(size=(n, d)) + means[y])
    return {
        "n": n, "d": d, "classes": classes,
        "features": F.ravel().tolist(), "labels": y.tolist(), "h_score": h_score(F, y, classes),
    }


def shrunk_case(n, d, classes, shift):
    y = labels_with_every_class(n, classes)
    means = RNG.normal(size=(classes, d)) * shift
    F = f32(RNG.normal(size=(n, d)) + means[y])
    score, a = shrunk_h_score(F, y, classes)
    return {
        "n": n, "d": d, "classes": classes,
        "features": F.ravel().tolist(), "labels": y.tolist(),
        "shrunk_h_score": score, "shrinkage": a, "h_score": h_score(F, y, classes),
    }


out = {
    "logme": {
        "n_gt_d": logme_case(40, 8, 3, 0.0),
        "n_lt_d": logme_case(12, 30, 3, 0.5),
        "n_gt_d_separable": logme_case(60, 16, 5, 1.5),
    },
    "leep": {"random": leep_case(30, 5, 3)},
    "h_score": {"random": h_score_case(50, 6, 3, 1.0)},
    # Drawn after the cases above so that their values do not change.
    "shrunk_h_score": {
        "n_lt_d": shrunk_case(20, 40, 4, 0.7),
        "n_gt_d": shrunk_case(60, 8, 3, 1.0),
    },
}
print(json.dumps(out, indent=1))
