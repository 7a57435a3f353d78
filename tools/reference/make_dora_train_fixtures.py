"""Training fixtures for DoRA (PEFT's use_dora): PEFT 0.21's loss and the gradients of lora_A, lora_B
and lora_magnitude_vector on the fixture models of test/fixtures/mpt, for lora-mpt's training parity
test (test/model/dora-train.test.ts). B is random and the magnitude moved off ‖W‖ so that every
gradient is non-trivial. The dropout case replaces each nn.Dropout's random mask with lora-mpt's
deterministic one (src/model/dropout.ts, re-derived below from its stated formula): PEFT's own code
then computes DoRA with dropout (base term on the dropped input) on exactly the inputs we drop.

Run: /opt/refpy/bin/python tools/reference/make_dora_train_fixtures.py
"""

import argparse
import json
import os
import shutil
import sys

import peft
import safetensors.torch
import torch
import torch.nn.functional as F
import transformers
from peft import LoraConfig, get_peft_model
from peft.tuners.lora import dora
from transformers import MptForCausalLM

ALL = ["Wqkv", "out_proj", "up_proj", "down_proj"]
# name, base case, LoraConfig kwargs, dropout seed (seed, micro-batch id) or None
CASES = [
    ("dora-h12-wqkv", "h12-wqkv", dict(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["Wqkv"]), None),
    ("dora-h6-all", "h6-all", dict(r=4, lora_alpha=16, lora_dropout=0.0, target_modules=ALL), None),
    (
        "dora-h8-rslora",
        "h8-clip-bf16",
        dict(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["Wqkv", "down_proj"], use_rslora=True),
        None,
    ),
    ("dora-h6-dropout", "h6-all", dict(r=4, lora_alpha=16, lora_dropout=0.25, target_modules=ALL), (7, 3)),
]
M32 = 0xFFFFFFFF


def mix(x: int) -> int:
    """lowbias32, as src/model/dropout.ts states it."""
    h = x & M32
    h ^= h >> 16
    h = (h * 0x7FEB352D) & M32
    h ^= h >> 15
    h = (h * 0x846CA68B) & M32
    h ^= h >> 16
    return h


def keep_mask(seed: int, micro_batch: int, layer: int, module: str, p: float, rows: int, cols: int) -> torch.Tensor:
    lo, hi = micro_batch & M32, (micro_batch // 2**32) & M32
    key = mix(mix(mix(seed) ^ lo ^ mix(hi)) ^ (layer * 4 + ALL.index(module)))
    threshold = p * 2**32
    keep = torch.tensor(1 / (1 - p), dtype=torch.float32)
    flat = [keep if mix(key ^ mix((k + 0x9E3779B9) & M32)) >= threshold else torch.tensor(0.0) for k in range(rows * cols)]
    return torch.stack(flat).reshape(rows, cols)


class FixedMask(torch.nn.Module):
    """Stands in for nn.Dropout: multiplies [b, t, in] by a fixed [b·t, in] keep mask."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.mask = mask

    def forward(self, x):
        return x * self.mask.reshape(x.shape)


class NoDetach(torch.Tensor):
    def detach(self):
        return self


def undetached_grads(pmodel, ids, inputs) -> dict:
    original = dora.DoraLinearLayer.get_lora_weight
    dora.DoraLinearLayer.get_lora_weight = lambda self, *a, **k: original(self, *a, **k).as_subclass(NoDetach)
    try:
        pmodel.zero_grad()
        out = pmodel(input_ids=ids, attention_mask=torch.tensor(inputs["attention_mask"]), labels=torch.tensor(inputs["labels"]))
        out.loss.backward()
    finally:
        dora.DoraLinearLayer.get_lora_weight = original
    return {n.replace(".default", ""): p.grad.detach().clone() for n, p in pmodel.named_parameters() if p.requires_grad}


def make(name, case, kwargs, drop, models, root, seed):
    out = os.path.join(root, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    case_dir = os.path.join(models, case)
    model = MptForCausalLM.from_pretrained(case_dir, dtype=torch.float32, attn_implementation="eager")
    model.name_or_path = f"test/fixtures/mpt/{case}"
    model.config._name_or_path = model.name_or_path
    pmodel = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", bias="none", use_dora=True, **kwargs))
    init = {
        "init:" + n.replace(".lora_magnitude_vector.default.weight", ".lora_magnitude_vector"): p.detach().clone()
        for n, p in pmodel.named_parameters()
        if "lora_magnitude_vector" in n
    }
    with torch.no_grad():
        for n, p in pmodel.named_parameters():
            if ".lora_B." in n:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            elif "lora_magnitude_vector" in n:
                p.mul_(1 + 0.2 * torch.randn(p.shape, generator=gen))
    pmodel.save_pretrained(os.path.join(out, "adapter"))
    readme = os.path.join(out, "adapter", "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    inputs = json.load(open(os.path.join(case_dir, "inputs.json")))
    ids = torch.tensor(inputs["input_ids"])
    rows, seq = ids.shape
    if drop is not None:
        for mname, module in pmodel.named_modules():
            if hasattr(module, "lora_dropout") and "default" in module.lora_dropout:
                parts = mname.split(".")
                layer, lin = int(parts[parts.index("blocks") + 1]), parts[-1]
                mask = keep_mask(drop[0], drop[1], layer, lin, kwargs["lora_dropout"], rows * seq, module.in_features)
                module.lora_dropout["default"] = FixedMask(mask)
    pmodel.train()
    out_ = pmodel(input_ids=ids, attention_mask=torch.tensor(inputs["attention_mask"]), labels=torch.tensor(inputs["labels"]))
    out_.loss.backward()
    labels = torch.tensor(inputs["labels"])[:, 1:].reshape(-1)
    logits = out_.logits[:, :-1].reshape(-1, out_.logits.shape[-1])
    loss_sum = F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum")
    supervised = int((labels != -100).sum())
    expected = {
        "loss": out_.loss.detach().reshape(()),
        "loss_sum": loss_sum.detach().reshape(()),
        "supervised_tokens": torch.tensor(supervised, dtype=torch.int64),
        **init,
    }
    for n, p in pmodel.named_parameters():
        if p.requires_grad:
            # saved names: `...lora_magnitude_vector` for the magnitude (its parameter is `.default.weight`)
            key = n.replace(".lora_magnitude_vector.default.weight", ".lora_magnitude_vector").replace(".default", "")
            expected[key] = p.grad.detach().float().contiguous()
    safetensors.torch.save_file(expected, os.path.join(out, "expected.safetensors"), metadata={"format": "pt"})
    # How far the A and B gradients move if the norm is NOT detached (both of PEFT's .detach() calls
    # made no-ops): the parity test's 1e-3 bound must be far below this for it to catch that mistake.
    undetached = undetached_grads(pmodel, ids, inputs)
    moved = min(
        ((undetached[k] - g).abs().max() / g.abs().max()).item()
        for k, g in expected.items()
        if k.endswith(("lora_A.weight", "lora_B.weight")) and not k.startswith("init:")
    )
    info = dict(
        undetached_min_rel_change_of_A_B_grads=moved,
        case=name,
        base=case,
        lora=dict(kwargs, use_dora=True),
        dropout=None if drop is None else dict(seed=drop[0], micro_batch=drop[1]),
        versions=dict(torch=torch.__version__, transformers=transformers.__version__, peft=peft.__version__),
    )
    with open(os.path.join(out, "case.json"), "w") as f:
        json.dump(info, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"{name}: loss {out_.loss.item():.6f}, {len(expected) - 3 - len(init)} gradients")


def main() -> None:
    if os.environ.get("PYTHONHASHSEED") != "0":  # PEFT saves target_modules from a set
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", default="test/fixtures/mpt")
    ap.add_argument("--out", default="test/fixtures/dora-train")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    for i, (name, case, kwargs, drop) in enumerate(CASES):
        make(name, case, kwargs, drop, args.models, args.out, 5151 + i)


if __name__ == "__main__":
    main()
