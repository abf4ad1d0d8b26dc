"""Checks that a zoo entry's weights load into torchvision's model and predict the same.

    zoo_torchvision_check.py WEIGHTS CONFIG_JSON DUMP

WEIGHTS: the entry's safetensors (e.g. .cache/zoo/cifar10-resnet18-w16.safetensors);
CONFIG_JSON: its `model` table as JSON without `arch`, e.g.
'{"depth": 18, "classes": 10, "width": 16, "small_input": true}';
DUMP: what `zoo evaluate NAME --dump FILE` wrote (the test inputs as the Rust side prepared
them, its predictions and the targets). Loads the weights with strict=True (batch-norm counters
aside, which Rust does not keep), predicts in evaluation mode on the same inputs, and prints the
agreement and both accuracies; exits 1 if any prediction differs.
"""

import json
import sys

import torch
from safetensors.torch import load_file

from zoo_models import TorchvisionResNet


def main(weights, config_json, dump):
    torch.set_num_threads(2)
    model = TorchvisionResNet(**json.loads(config_json))
    state = load_file(weights)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        sys.exit(f"missing {missing}, unexpected {unexpected}")
    model.eval()
    d = load_file(dump)
    with torch.no_grad():
        preds = torch.cat([model(x).argmax(-1) for x in d["input"].split(500)])
    same = (preds == d["prediction"]).sum().item()
    n = len(preds)
    acc_torch = (preds == d["target"]).float().mean().item()
    acc_rust = (d["prediction"] == d["target"]).float().mean().item()
    print(f"torchvision: {same}/{n} predictions identical to Rust's; "
          f"accuracy torchvision {100 * acc_torch:.2f}%, Rust {100 * acc_rust:.2f}%")
    sys.exit(0 if same == n else 1)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
