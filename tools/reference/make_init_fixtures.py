"""PEFT 0.21's init_lora_weights (True, False, "gaussian") on MPT, for lora-mpt's initialisation test
(test/checkpoint/lora-init.test.ts). Writes test/fixtures/lora-init/:

- <mode>/adapter_config.json: what `save_pretrained` writes for a new adapter on the fixture model
  h12-wqkv (r 4, alpha 8, Wqkv), for each mode and for DoRA with init False;
- dora-false/adapter_model.safetensors: that DoRA adapter's A, B and lora_magnitude_vector, whose
  magnitude PEFT computes as ‖W + s·B·A‖ per row with B != 0;
- stats/config.json + stats.json: on a larger random MPT (d_model 256, r 16, every Linear), per mode
  and per module, the count, mean, std, min and max of the initial lora_A and lora_B entries PEFT
  draws (seed 0), with the distribution PEFT's reset_lora_parameters (or nn.Linear's own init, for
  False) states.

Run: /opt/refpy/bin/python tools/reference/make_init_fixtures.py [--out test/fixtures/lora-init]
"""

import argparse
import json
import math
import os
import shutil
import sys

import peft
import safetensors.torch
import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import MptConfig, MptForCausalLM

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
BASE = "test/fixtures/mpt/h12-wqkv"
MODES = [("true", True), ("false", False), ("gaussian", "gaussian")]
ALL = ["Wqkv", "out_proj", "up_proj", "down_proj"]


def versions():
    return dict(torch=torch.__version__, transformers=transformers.__version__, peft=peft.__version__)


def adapter_configs(out):
    cases = [(name, dict(init_lora_weights=mode)) for name, mode in MODES]
    cases.append(("dora-false", dict(init_lora_weights=False, use_dora=True)))
    for name, extra in cases:
        torch.manual_seed(0)
        model = get_peft_model(
            MptForCausalLM.from_pretrained(os.path.join(ROOT, BASE), dtype=torch.float32),
            LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["Wqkv"], task_type="CAUSAL_LM", **extra),
        )
        model.peft_config["default"].base_model_name_or_path = BASE
        d = os.path.join(out, name)
        model.save_pretrained(d)
        if name != "dora-false":
            os.remove(os.path.join(d, "adapter_model.safetensors"))
        if os.path.exists(os.path.join(d, "README.md")):
            os.remove(os.path.join(d, "README.md"))


def stats_of(t):
    x = t.detach().double().flatten()
    return dict(n=x.numel(), mean=x.mean().item(), std=x.std(unbiased=False).item(), min=x.min().item(), max=x.max().item())


def theory(mode, kind, in_features, r):
    """The distribution PEFT states for an entry: uniform (bound) or normal (std); B zero for True/gaussian."""
    if kind == "A":
        if mode == "gaussian":
            return dict(dist="normal", std=1 / r)
        return dict(dist="uniform", bound=1 / math.sqrt(in_features))  # kaiming_uniform_(a=sqrt(5))
    if mode is False:
        return dict(dist="uniform", bound=1 / math.sqrt(r))  # nn.Linear(r, out)'s own init
    return dict(dist="zero")


def statistics(out):
    r = 16
    cfg = MptConfig(
        d_model=256, n_heads=4, n_layers=2, expansion_ratio=4, vocab_size=96, max_seq_len=32, no_bias=True,
        attn_config=dict(alibi=True, alibi_bias_max=8),
    )
    d = os.path.join(out, "stats")
    os.makedirs(d, exist_ok=True)
    cfg.save_pretrained(d)
    result = dict(r=r, lora_alpha=32, target_modules=ALL, seed=0, modes={})
    for name, mode in MODES:
        torch.manual_seed(0)
        model = get_peft_model(
            MptForCausalLM(cfg),
            LoraConfig(r=r, lora_alpha=32, target_modules=ALL, task_type="CAUSAL_LM", init_lora_weights=mode),
        )
        per = {}
        for module in ALL:
            for kind in ["A", "B"]:
                ts = [m.weight for n, m in model.named_modules() if n.endswith(f"{module}.lora_{kind}.default")]
                in_features = ts[0].shape[1] if kind == "A" else None
                per[f"{kind}:{module}"] = dict(
                    peft=stats_of(torch.cat([t.flatten() for t in ts])),
                    theory=theory(mode, kind, in_features, r),
                )
        result["modes"][name] = per
    result["versions"] = versions()
    with open(os.path.join(d, "stats.json"), "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")


def main():
    if os.environ.get("PYTHONHASHSEED") != "0":
        # PEFT keeps target_modules in a set and saves it in hash order.
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable] + sys.argv)
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=os.path.join(ROOT, "test/fixtures/lora-init"))
    a = p.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    os.makedirs(a.out)
    adapter_configs(a.out)
    statistics(a.out)
    with open(os.path.join(a.out, "recipe.json"), "w") as f:
        json.dump(
            dict(
                base=BASE,
                how="get_peft_model(MptForCausalLM, LoraConfig(init_lora_weights=...)).save_pretrained; stats: torch.manual_seed(0), d_model 256, r 16",
                versions=versions(),
            ),
            f,
            indent=2,
            sort_keys=True,
        )
        f.write("\n")


if __name__ == "__main__":
    main()
