"""Reference values for tests/optim.rs, computed with PyTorch's own optimizers.

Run with the project environment's Python:
    .cache/torch-venv/bin/python crates/core-tensor/tests/reference/optim_reference.py \
        > crates/core-tensor/tests/reference/optim.json

A linear layer (weight 3x4, bias 3) with fixed initial values is trained on a fixed batch with
the mean squared error for 4 steps; the JSON holds the initial values, the data and, per
optimizer setting, the weights after the steps.
"""
import json

import torch

torch.manual_seed(0)
W0 = torch.randn(3, 4)
B0 = torch.randn(3)
X = torch.randn(5, 4)
Y = torch.randn(5, 3)
STEPS = 4

CASES = {
    "sgd": (torch.optim.SGD, dict(lr=0.1)),
    "sgd_momentum_wd": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    "sgd_nesterov": (torch.optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True)),
    "sgd_dampening": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.3)),
    "adam": (torch.optim.Adam, dict(lr=0.01)),
    "adam_wd": (torch.optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.05)),
    "adamw": (torch.optim.AdamW, dict(lr=0.01, weight_decay=0.1)),
}

out = {
    "w0": W0.flatten().tolist(),
    "b0": B0.tolist(),
    "x": X.flatten().tolist(),
    "y": Y.flatten().tolist(),
    "steps": STEPS,
    "cases": {},
}
for name, (cls, kw) in CASES.items():
    w = W0.clone().requires_grad_(True)
    b = B0.clone().requires_grad_(True)
    opt = cls([w, b], **kw)
    for _ in range(STEPS):
        opt.zero_grad()
        loss = ((X @ w.T + b - Y) ** 2).mean()
        loss.backward()
        opt.step()
    out["cases"][name] = {"w": w.detach().flatten().tolist(), "b": b.detach().tolist()}
print(json.dumps(out, indent=1))
