"""Golden fixtures for lora-mpt's MPT + LoRA code, computed by Hugging Face transformers' native
MptForCausalLM and PEFT (CPU, float32, eager attention). Writes test/fixtures/mpt/<case>/; see
tools/reference/README.md for the layout. Deterministic: every case uses its own fixed seed.

Run: /opt/refpy/bin/python tools/reference/make_mpt_fixtures.py [--out test/fixtures/mpt]
"""

import argparse
import json
import math
import os
import shutil
import sys
from dataclasses import dataclass, field

import peft
import safetensors.torch
import torch
import torch.nn.functional as F
import transformers
from peft import LoraConfig, get_peft_model
from transformers import MptConfig, MptForCausalLM


@dataclass(frozen=True)
class Case:
    name: str
    seed: int
    mpt: dict  # MptConfig kwargs
    lora: dict  # LoraConfig kwargs
    storage: str = "float32"  # dtype the weights are stored in ("float32" or "bfloat16")
    bin_shards: int = 1  # pytorch_model.bin split into this many shards (index written when > 1)
    st_shards: int = 1  # model.safetensors split likewise
    adapter_bin: bool = False  # also write adapter_init_bin/ (PEFT safe_serialization=False)
    notes: list = field(default_factory=list)


BASE = dict(d_model=48, n_layers=2, expansion_ratio=4, vocab_size=96, max_seq_len=32, no_bias=True)
CASES = [
    Case(
        name="h12-wqkv",
        seed=1201,
        mpt=dict(BASE, n_heads=12, attn_config=dict(alibi=True, alibi_bias_max=8)),
        lora=dict(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["Wqkv"]),
        notes=["12 heads: non-power-of-two ALiBi slopes", "LoRA on Wqkv only (PEFT's MPT default)"],
    ),
    Case(
        name="h6-all",
        seed=601,
        mpt=dict(BASE, n_heads=6, attn_config=dict(alibi=True, alibi_bias_max=8)),
        lora=dict(r=4, lora_alpha=16, lora_dropout=0.0, target_modules=["Wqkv", "out_proj", "up_proj", "down_proj"]),
        bin_shards=2,
        adapter_bin=True,
        notes=["6 heads: non-power-of-two ALiBi slopes", "LoRA on every linear", "pytorch_model.bin in 2 shards"],
    ),
    Case(
        name="h8-clip-bf16",
        seed=801,
        mpt=dict(
            BASE,
            d_model=32,
            n_heads=8,
            layer_norm_epsilon=1e-4,
            attn_config=dict(alibi=True, alibi_bias_max=8, clip_qkv=1.5, softmax_scale=0.4),
        ),
        lora=dict(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["Wqkv", "down_proj"], use_rslora=True),
        storage="bfloat16",
        st_shards=2,
        notes=[
            "8 heads: power-of-two ALiBi slopes",
            "clip_qkv, softmax_scale and layer_norm_epsilon set",
            "weights stored as bfloat16 (values are exactly bf16; the model computed in float32 with them)",
            "model.safetensors in 2 shards; use_rslora (scaling = alpha / sqrt(r))",
        ],
    ),
]

# Three rows of 12 tokens: row 0 fully supervised, row 1 right-padded (3 pads: attention_mask 0,
# labels -100), row 2 with its first 4 labels -100 (a "prompt" that is not trained on).
SEQ = 12
PAD_ID = 0
RECIPE = dict(
    optimizer="torch.optim.AdamW",
    lr=1e-2,
    betas=[0.9, 0.999],
    eps=1e-8,
    weight_decay=0.0,
    amsgrad=False,
    foreach=False,
    steps=3,
    max_grad_norm=1.0,
    clip="torch.nn.utils.clip_grad_norm_ over all LoRA grads (L2), coef = min(1, max_norm / (norm + 1e-6))",
    batch="inputs.json, the same whole batch every step",
    loss="HF MptForCausalLM loss: mean cross-entropy over labels != -100 after the one-token shift",
    order="zero_grad, forward, backward, clip, step",
    dropout="none (all p = 0)",
)


def make_inputs(gen: torch.Generator, vocab: int) -> dict:
    ids = torch.randint(1, vocab, (3, SEQ), generator=gen)
    mask = torch.ones(3, SEQ, dtype=torch.long)
    ids[1, SEQ - 3 :] = PAD_ID
    mask[1, SEQ - 3 :] = 0
    labels = ids.clone()
    labels[mask == 0] = -100
    labels[2, :4] = -100
    return dict(input_ids=ids.tolist(), attention_mask=mask.tolist(), labels=labels.tolist())


def init_weights(model: MptForCausalLM, gen: torch.Generator, storage: torch.dtype) -> None:
    """Non-trivial weights (activations of order 1, peaked softmax) instead of HF's N(0, 0.02)."""
    with torch.no_grad():
        for name, p in model.transformer.named_parameters():
            if name.endswith("wte.weight"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
            elif "norm" in name:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1]))
            # Round to the storage dtype so the stored checkpoint is exactly what was computed with.
            p.copy_(p.to(storage).to(torch.float32))


def state_dict_to_save(model: MptForCausalLM, storage: torch.dtype) -> dict:
    # The hub layout: transformer.* only; lm_head is tied to wte and not stored.
    return {k: v.detach().to(storage).contiguous() for k, v in model.state_dict().items() if k.startswith("transformer.")}


def shard(sd: dict, n: int) -> list:
    keys = list(sd.keys())
    per = math.ceil(len(keys) / n)
    return [{k: sd[k] for k in keys[i * per : (i + 1) * per]} for i in range(n)]


def write_index(path: str, shards: list, names: list) -> None:
    total = sum(t.numel() * t.element_size() for s in shards for t in s.values())
    weight_map = {k: names[i] for i, s in enumerate(shards) for k in s}
    with open(path, "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2, sort_keys=True)
        f.write("\n")


def write_weights(case: Case, out: str, sd: dict) -> None:
    if case.st_shards == 1:
        safetensors.torch.save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    else:
        parts = shard(sd, case.st_shards)
        names = [f"model-{i + 1:05d}-of-{case.st_shards:05d}.safetensors" for i in range(case.st_shards)]
        for part, name in zip(parts, names):
            safetensors.torch.save_file(part, os.path.join(out, name), metadata={"format": "pt"})
        write_index(os.path.join(out, "model.safetensors.index.json"), parts, names)
    if case.bin_shards == 1:
        torch.save(sd, os.path.join(out, "pytorch_model.bin"))
    else:
        parts = shard(sd, case.bin_shards)
        names = [f"pytorch_model-{i + 1:05d}-of-{case.bin_shards:05d}.bin" for i in range(case.bin_shards)]
        for part, name in zip(parts, names):
            torch.save(part, os.path.join(out, name))
        write_index(os.path.join(out, "pytorch_model.bin.index.json"), parts, names)


def lora_params(model) -> dict:
    """Trainable LoRA parameters under PEFT's saved names (adapter name `.default` removed)."""
    return {n.replace(".default", ""): p for n, p in model.named_parameters() if p.requires_grad}


def save_adapter(model, path: str, safe: bool = True) -> None:
    model.save_pretrained(path, safe_serialization=safe)
    # PEFT also writes a model card; it is not part of the format and only costs space.
    readme = os.path.join(path, "README.md")
    if os.path.exists(readme):
        os.remove(readme)


def forward_loss(model, batch: dict):
    out = model(input_ids=batch["ids"], attention_mask=batch["mask"], labels=batch["labels"])
    return out.logits, out.loss


def make_case(case: Case, root: str) -> None:
    out = os.path.join(root, case.name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    torch.manual_seed(case.seed)
    gen = torch.Generator().manual_seed(case.seed)
    storage = getattr(torch, case.storage)

    config = MptConfig(**case.mpt)
    config._attn_implementation = "eager"
    model = MptForCausalLM(config).float().eval()
    init_weights(model, gen, storage)
    config.save_pretrained(out)
    write_weights(case, out, state_dict_to_save(model, storage))

    inputs = make_inputs(gen, config.vocab_size)
    with open(os.path.join(out, "inputs.json"), "w") as f:
        json.dump(inputs, f)
        f.write("\n")
    batch = dict(
        ids=torch.tensor(inputs["input_ids"]),
        mask=torch.tensor(inputs["attention_mask"]),
        labels=torch.tensor(inputs["labels"]),
    )

    # Base forward, and a self-check of the padding semantics: the padded row's real positions must
    # equal that row run alone without padding.
    with torch.no_grad():
        logits_base = model(input_ids=batch["ids"], attention_mask=batch["mask"]).logits
        n_real = int(batch["mask"][1].sum())
        alone = model(input_ids=batch["ids"][1:2, :n_real]).logits
        assert torch.allclose(alone[0], logits_base[1, :n_real], atol=1e-5), "padding mask semantics changed"

    model.name_or_path = f"test/fixtures/mpt/{case.name}"
    model.config._name_or_path = model.name_or_path
    lcfg = LoraConfig(task_type="CAUSAL_LM", bias="none", **case.lora)
    pmodel = get_peft_model(model, lcfg)
    params = lora_params(pmodel)
    with torch.no_grad():
        # lora_B is zero after PEFT's init, which would make every lora_A gradient zero; fixtures use a
        # random non-zero B (and PEFT's own kaiming-uniform A) so both gradients are checked.
        for n, p in params.items():
            if ".lora_B." in n:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    save_adapter(pmodel, os.path.join(out, "adapter_init"))
    if case.adapter_bin:
        save_adapter(pmodel, os.path.join(out, "adapter_init_bin"), safe=False)

    pmodel.train()  # every dropout is p = 0, so train and eval compute the same
    logits, loss = forward_loss(pmodel, batch)
    loss.backward()
    shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1])
    shift_labels = batch["labels"][:, 1:].reshape(-1)
    loss_sum = F.cross_entropy(shift_logits.float(), shift_labels, ignore_index=-100, reduction="sum")
    supervised = int((shift_labels != -100).sum())
    assert abs(loss_sum.item() / supervised - loss.item()) < 1e-5 * max(1.0, loss.item())

    expected = {
        "logits": logits.detach().float().contiguous(),
        "logits_base": logits_base.float().contiguous(),
        "loss": loss.detach().float().reshape(()),
        "loss_sum": loss_sum.detach().float().reshape(()),
        "supervised_tokens": torch.tensor(supervised, dtype=torch.int64),
    }
    for n, p in params.items():
        expected[n] = p.grad.detach().float().contiguous()

    opt = torch.optim.AdamW(
        list(params.values()),
        lr=RECIPE["lr"],
        betas=tuple(RECIPE["betas"]),
        eps=RECIPE["eps"],
        weight_decay=RECIPE["weight_decay"],
        foreach=False,
    )
    step_losses, step_norms = [], []
    for _ in range(RECIPE["steps"]):
        opt.zero_grad()
        _, step_loss = forward_loss(pmodel, batch)
        step_loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(list(params.values()), RECIPE["max_grad_norm"])
        opt.step()
        step_losses.append(step_loss.item())
        step_norms.append(norm.item())
    expected["step_losses"] = torch.tensor(step_losses, dtype=torch.float32)
    expected["step_grad_norms"] = torch.tensor(step_norms, dtype=torch.float32)
    save_adapter(pmodel, os.path.join(out, "adapter_step3"))
    safetensors.torch.save_file(expected, os.path.join(out, "expected.safetensors"), metadata={"format": "pt"})

    recipe = dict(
        RECIPE,
        case=case.name,
        seed=case.seed,
        storage_dtype=case.storage,
        lora=dict(case.lora, scaling=lora_scaling(case.lora)),
        notes=case.notes,
        versions=dict(torch=torch.__version__, transformers=transformers.__version__, peft=peft.__version__),
    )
    with open(os.path.join(out, "recipe.json"), "w") as f:
        json.dump(recipe, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"{case.name}: loss {loss.item():.6f} over {supervised} tokens; step losses {step_losses}")


def lora_scaling(lora: dict) -> float:
    r, alpha = lora["r"], lora["lora_alpha"]
    return alpha / math.sqrt(r) if lora.get("use_rslora") else alpha / r


def main() -> None:
    # PEFT stores target_modules as a set; its saved order follows Python's string hashing.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="test/fixtures/mpt")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    for case in CASES:
        make_case(case, args.out)


if __name__ == "__main__":
    main()
