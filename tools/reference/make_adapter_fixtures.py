"""PEFT adapters beyond plain LoRA, made by PEFT 0.21 itself on the committed fixture models of
test/fixtures/mpt/: DoRA, layers_to_transform, exclude_modules, rsLoRA, and adapters whose fields
lora-mpt must refuse (rank_pattern, alpha_pattern, modules_to_save, lora_bias). For each adapter
that lora-mpt supports: PEFT's logits on the case's inputs.json and PEFT's merge_and_unload weights
(the Linear weights it changed, float32). Writes test/fixtures/adapters/<variant>/; see
tools/reference/README.md.

Run: /opt/refpy/bin/python tools/reference/make_adapter_fixtures.py [--out test/fixtures/adapters]
"""

import argparse
import json
import os
import shutil
import sys

import peft
import safetensors.torch
import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import MptForCausalLM

ALL = ["Wqkv", "out_proj", "up_proj", "down_proj"]
VARIANTS = [
    # name, base case, LoraConfig kwargs, supported by lora-mpt
    ("dora-h6", "h6-all", dict(r=4, lora_alpha=8, target_modules=ALL, use_dora=True), True),
    ("dora-rslora-h8", "h8-clip-bf16", dict(r=4, lora_alpha=8, target_modules=["Wqkv", "down_proj"], use_dora=True, use_rslora=True), True),
    ("layers-h12", "h12-wqkv", dict(r=4, lora_alpha=8, target_modules=["Wqkv", "out_proj"], layers_to_transform=[1]), True),
    ("exclude-h6", "h6-all", dict(r=4, lora_alpha=16, target_modules=ALL, exclude_modules=["transformer.blocks.0.ffn.up_proj"]), True),
    ("lora-rslora-h8", "h8-clip-bf16", dict(r=4, lora_alpha=8, target_modules=["Wqkv", "down_proj"], use_rslora=True), True),
    ("rank-pattern-h6", "h6-all", dict(r=4, lora_alpha=8, target_modules=ALL, rank_pattern={"Wqkv": 8}), False),
    ("alpha-pattern-h6", "h6-all", dict(r=4, lora_alpha=8, target_modules=ALL, alpha_pattern={"out_proj": 32}), False),
    ("modules-to-save-h6", "h6-all", dict(r=4, lora_alpha=8, target_modules=["Wqkv"], modules_to_save=["norm_f"]), False),
    ("lora-bias-h6", "h6-all", dict(r=4, lora_alpha=8, target_modules=["Wqkv"], lora_bias=True), False),
]


def make_variant(name: str, case: str, kwargs: dict, supported: bool, models: str, root: str, seed: int) -> None:
    out = os.path.join(root, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    case_dir = os.path.join(models, case)
    model = MptForCausalLM.from_pretrained(case_dir, dtype=torch.float32, attn_implementation="eager").eval()
    model.name_or_path = f"test/fixtures/mpt/{case}"
    model.config._name_or_path = model.name_or_path
    pmodel = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", bias="none", lora_dropout=0.0, **kwargs))
    with torch.no_grad():
        for n, p in pmodel.named_parameters():
            if ".lora_B." in n:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            elif "lora_magnitude_vector" in n:
                # PEFT starts m at ‖W‖ per row (a no-op); move it so the magnitude really acts.
                p.mul_(1 + 0.2 * torch.randn(p.shape, generator=gen))
            elif n.endswith("lora_B.default.bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    pmodel.save_pretrained(out)
    readme = os.path.join(out, "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    keys = sorted(peft.get_peft_model_state_dict(pmodel).keys())
    info = dict(variant=name, base=case, lora=kwargs, supported=supported, adapter_keys=keys,
                versions=dict(torch=torch.__version__, transformers=transformers.__version__, peft=peft.__version__))
    if supported:
        inputs = json.load(open(os.path.join(case_dir, "inputs.json")))
        with torch.no_grad():
            logits = pmodel(input_ids=torch.tensor(inputs["input_ids"]),
                            attention_mask=torch.tensor(inputs["attention_mask"])).logits
        merged = pmodel.merge_and_unload()
        base_sd = MptForCausalLM.from_pretrained(case_dir, dtype=torch.float32).state_dict()
        changed = {k: v.detach().float().contiguous() for k, v in merged.state_dict().items()
                   if k in base_sd and k.startswith("transformer.") and not torch.equal(v, base_sd[k])}
        with torch.no_grad():
            merged_logits = merged(input_ids=torch.tensor(inputs["input_ids"]),
                                   attention_mask=torch.tensor(inputs["attention_mask"])).logits
        gap = (merged_logits - logits).abs().max().item()
        assert gap < 1e-4, f"{name}: PEFT's merged model differs from its adapter model by {gap}"
        safetensors.torch.save_file({"logits": logits.float().contiguous()}, os.path.join(out, "expected_logits.safetensors"))
        safetensors.torch.save_file(changed, os.path.join(out, "merged_weights.safetensors"))
        info["merged_weights"] = sorted(changed)
        info["merged_vs_adapter_max_abs"] = gap
    with open(os.path.join(out, "variant.json"), "w") as f:
        json.dump(info, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"{name}: {len(keys)} adapter tensors{', merged ' + str(len(info.get('merged_weights', []))) if supported else ' (to be refused)'}")


def main() -> None:
    if os.environ.get("PYTHONHASHSEED") != "0":  # PEFT saves target_modules from a set
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", default="test/fixtures/mpt")
    ap.add_argument("--out", default="test/fixtures/adapters")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    for i, (name, case, kwargs, supported) in enumerate(VARIANTS):
        make_variant(name, case, kwargs, supported, args.models, args.out, 4242 + i)


if __name__ == "__main__":
    main()
