"""Moves weights between the Rust networks (crates/pretrained-zoo) and their PyTorch twins.

    interop.py load-and-run ARCH CONFIG_JSON WEIGHTS INPUT OUTPUT
        Loads Rust-saved WEIGHTS (safetensors) into the twin (strict), runs an eval-mode forward
        pass on INPUT's tensor "input" and saves it as OUTPUT's tensor "output".
    interop.py init-and-save ARCH CONFIG_JSON SEED WEIGHTS_OUT INPUT_OUT OUTPUT_OUT
        Initialises the twin with SEED, runs two train-mode passes so batch-norm statistics
        move, then saves the weights, a random input and the eval-mode output.
    interop.py to-pt WEIGHTS PT_OUT [--ordered]
        Rewrites safetensors WEIGHTS with torch.save: a plain dict, or with --ordered the
        OrderedDict that model.state_dict() returns.

ARCH is the Rust `arch` tag (mlp, lenet, resnet, face_cnn, audio_cnn1d, spectrogram_cnn) and
CONFIG_JSON the Rust config's fields as JSON. Used by crates/pretrained-zoo/tests/interop.rs.
"""

import collections
import json
import sys

import torch
from safetensors.torch import load_file, save_file

from zoo_models import build


def example_input(arch, config, generator):
    """A small random batch of the shape the architecture takes."""
    shape = {
        "mlp": [4, config.get("inputs", 784)],
        "lenet": [4, 1, 28, 28],
        "resnet": [4, 1, 28, 28],
        "face_cnn": [3, 1, 112, 92],
        "audio_cnn1d": [3, 1, 4000],
        "spectrogram_cnn": [3, 1, 40, 101],
    }[arch]
    return torch.randn(shape, generator=generator)


def load_and_run(arch, config_json, weights, input_path, output_path):
    model = build(arch, json.loads(config_json))
    # strict=True: every key must match. Rust files have no num_batches_tracked; batch norm
    # fills a missing counter itself when the state dict carries no version metadata.
    model.load_state_dict(load_file(weights), strict=True)
    model.eval()
    with torch.no_grad():
        out = model(load_file(input_path)["input"])
    save_file({"output": out.contiguous()}, output_path)


def init_and_save(arch, config_json, seed, weights_out, input_out, output_out):
    config = json.loads(config_json)
    torch.manual_seed(int(seed))
    model = build(arch, config)
    gen = torch.Generator().manual_seed(int(seed) + 1)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            # Shifted, scaled inputs so the running statistics end far from 0 and 1.
            model(example_input(arch, config, gen) * 2.0 + 0.5)
    model.eval()
    x = example_input(arch, config, gen)
    with torch.no_grad():
        out = model(x)
    save_file(model.state_dict(), weights_out)
    save_file({"input": x}, input_out)
    save_file({"output": out.contiguous()}, output_out)


def to_pt(weights, pt_out, *flags):
    state = load_file(weights)
    torch.save(collections.OrderedDict(state) if "--ordered" in flags else dict(state), pt_out)


COMMANDS = {"load-and-run": load_and_run, "init-and-save": init_and_save, "to-pt": to_pt}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    torch.set_num_threads(1)
    COMMANDS[sys.argv[1]](*sys.argv[2:])
