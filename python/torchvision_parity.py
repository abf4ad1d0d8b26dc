"""Reference side of crates/pretrained-zoo/tests/torchvision.rs: torchvision's ResNets against
the Rust `TorchvisionResNet`, in both directions.

    torchvision_parity.py reference CONFIG_JSON SEED SHAPE OUT_DIR
        Builds the network of CONFIG_JSON (the Rust `TorchvisionResNetConfig` as JSON) with
        torchvision, seeded; moves its batch-norm statistics and affine parameters away from
        their initial values; writes into OUT_DIR:
          weights.safetensors  the state_dict (what the Rust side loads, strict);
          input.safetensors    `input` (SHAPE, e.g. 4,3,64,64) and `target` (class indices);
          eval.safetensors     `output`: the evaluation-mode output;
          step.safetensors     `output`: the training-mode output of one step, `grad.NAME` for
                               every parameter after cross-entropy's backward pass, and
                               `NAME` for every running_mean/running_var after that pass.
    torchvision_parity.py load-and-run CONFIG_JSON WEIGHTS INPUT OUTPUT
        Loads Rust-saved WEIGHTS into the torchvision network with strict=True and writes the
        evaluation-mode output on INPUT's `input` as OUTPUT's `output`.
    torchvision_parity.py save-pth CONFIG_JSON SEED PTH_OUT INPUT OUTPUT
        torch.save of a random network's state_dict as a .pth, and its evaluation-mode output
        on INPUT's `input` as OUTPUT's `output`.
"""

import json
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from zoo_models import TorchvisionResNet


def reference(config_json, seed, shape, out_dir):
    config = json.loads(config_json)
    seed = int(seed)
    shape = [int(s) for s in shape.split(",")]
    torch.manual_seed(seed)
    model = TorchvisionResNet(**config)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.uniform_(-0.2, 0.2, generator=gen)
        model.train()
        for _ in range(2):
            model(torch.randn(shape, generator=gen) * 2.0 + 0.5)
    x = torch.randn(shape, generator=gen)
    y = torch.randint(config["classes"], [shape[0]], generator=gen)
    save_file(model.state_dict(), f"{out_dir}/weights.safetensors")
    save_file({"input": x, "target": y}, f"{out_dir}/input.safetensors")
    model.eval()
    with torch.no_grad():
        save_file({"output": model(x).contiguous()}, f"{out_dir}/eval.safetensors")
    model.train()
    out = model(x)
    F.cross_entropy(out, y).backward()
    step = {"output": out.detach().contiguous()}
    for name, p in model.named_parameters():
        step[f"grad.{name}"] = p.grad.contiguous()
    for name, b in model.named_buffers():
        if name.endswith(("running_mean", "running_var")):
            step[name] = b.contiguous()
    save_file(step, f"{out_dir}/step.safetensors")


def load_and_run(config_json, weights, input_path, output_path):
    model = TorchvisionResNet(**json.loads(config_json))
    model.load_state_dict(load_file(weights), strict=True)
    model.eval()
    with torch.no_grad():
        out = model(load_file(input_path)["input"])
    save_file({"output": out.contiguous()}, output_path)


def save_pth(config_json, seed, pth_out, input_path, output_path):
    """A torchvision network with random weights saved by torch.save(state_dict) as .pth, and
    its evaluation-mode output on INPUT's `input`."""
    torch.manual_seed(int(seed))
    model = TorchvisionResNet(**json.loads(config_json))
    torch.save(model.state_dict(), pth_out)
    model.eval()
    with torch.no_grad():
        out = model(load_file(input_path)["input"])
    save_file({"output": out.contiguous()}, output_path)


COMMANDS = {"reference": reference, "load-and-run": load_and_run, "save-pth": save_pth}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    torch.set_num_threads(1)
    COMMANDS[sys.argv[1]](*sys.argv[2:])
