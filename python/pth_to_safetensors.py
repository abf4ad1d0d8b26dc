"""Converts a PyTorch checkpoint (.pth / .pt) to a safetensors state_dict, safely.

    pth_to_safetensors.py IN.pth OUT.safetensors

torch.load(..., weights_only=True) refuses anything but tensors and plain containers: a
checkpoint that would run code when unpickled is an error, never executed. A checkpoint that
wraps its state_dict (`{"state_dict": ...}` or `{"model": ...}`, as training scripts often save)
is unwrapped. The same two lines convert a checkpoint in your own Python:

    from safetensors.torch import save_file; import torch
    save_file({k: v.contiguous() for k, v in torch.load("in.pth", weights_only=True).items()}, "out.safetensors")
"""

import sys

import torch
from safetensors.torch import save_file


def main(src, dst):
    state = torch.load(src, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        sys.exit(f"{src}: holds a {type(state).__name__}, not a state_dict (a dict of tensors)")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        sys.exit(f"{src}: entries that are not tensors: {', '.join(map(str, bad))}")
    # Strip DataParallel's `module.` prefix when every key has it.
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    save_file({k: v.contiguous() for k, v in state.items()}, dst)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
