"""Golden fixtures for lora-mpt's Llama family, computed by transformers' LlamaForCausalLM and PEFT
(CPU, float32, eager attention) on tiny random-weight models: logits with and without the adapter,
the loss, every LoRA gradient, three clipped AdamW steps, PEFT's merge_and_unload weights, and
transformers' greedy and beam-search `generate`. Writes test/fixtures/llama/<case>/ in the layout of
make_mpt_fixtures.py (see tools/reference/README.md) plus merged.safetensors and generate.json.

Run: /opt/refpy/bin/python tools/reference/make_llama_fixtures.py [--out test/fixtures/llama]
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
from transformers import LlamaConfig, LlamaForCausalLM


@dataclass(frozen=True)
class Case:
    name: str
    seed: int
    llama: dict  # LlamaConfig kwargs
    lora: dict  # LoraConfig kwargs
    notes: list = field(default_factory=list)


BASE = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, vocab_size=96, max_position_embeddings=32,
            rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2)
LLAMA3 = dict(rope_type="llama3", rope_theta=10000.0, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
              original_max_position_embeddings=8)
CASES = [
    Case(
        name="gqa-untied-default",
        seed=2601,
        llama=dict(BASE, num_attention_heads=8, num_key_value_heads=2, tie_word_embeddings=False),
        lora=dict(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=None),
        notes=["GQA 8 query / 2 key-value heads", "untied lm_head", "default RoPE",
               "target_modules None: PEFT's llama default (q_proj, v_proj)"],
    ),
    Case(
        name="gqa-tied-llama3",
        seed=2602,
        llama=dict(BASE, num_attention_heads=8, num_key_value_heads=2, tie_word_embeddings=True,
                   attention_bias=True, rope_parameters=LLAMA3),
        lora=dict(r=4, lora_alpha=16, lora_dropout=0.0, use_rslora=True,
                  target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
        notes=["GQA 8/2", "tied embeddings", "rope_type llama3 (original_max_position_embeddings 8, so the "
               "head's two frequencies are one smoothed and one divided by factor)", "attention_bias",
               "LoRA on all seven Linears, rsLoRA"],
    ),
    Case(
        name="mha-dora-mlpbias",
        seed=2603,
        llama=dict(BASE, num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=False, mlp_bias=True,
                   rope_parameters=dict(rope_type="default", rope_theta=500000.0)),
        lora=dict(r=4, lora_alpha=8, lora_dropout=0.0, use_dora=True,
                  target_modules=["q_proj", "k_proj", "o_proj", "down_proj"]),
        notes=["4 heads, no grouping", "mlp_bias", "rope_theta 500000", "DoRA"],
    ),
]

SEQ = 12
PAD_ID = 0
RECIPE = dict(
    optimizer="torch.optim.AdamW", lr=1e-2, betas=[0.9, 0.999], eps=1e-8, weight_decay=0.0, amsgrad=False,
    foreach=False, steps=3, max_grad_norm=1.0,
    clip="torch.nn.utils.clip_grad_norm_ over all LoRA params (L2), coef = min(1, max_norm / (norm + 1e-6))",
    batch="inputs.json, the same whole batch every step",
    loss="LlamaForCausalLM loss: mean cross-entropy over labels != -100 after the one-token shift",
    order="zero_grad, forward, backward, clip, step",
)
MAX_NEW = 12
# `lora-mpt eval --text`: the fixture models' 96-id vocabulary fits the generate fixtures' byte
# tokenizer (one token per printable character); no BOS is added, as lora-mpt's eval does not.
EVAL_TOKENIZER = "test/fixtures/generate/cli/tokenizer.json"
EVAL_TEXT = "Alpacas hum when curious."
PROMPT_LENGTHS = [5, 9]


def make_inputs(gen: torch.Generator, vocab: int) -> dict:
    """Three rows: fully supervised; right-padded (3 pads); first 4 labels -100."""
    ids = torch.randint(3, vocab, (3, SEQ), generator=gen)
    mask = torch.ones(3, SEQ, dtype=torch.long)
    ids[1, SEQ - 3:] = PAD_ID
    mask[1, SEQ - 3:] = 0
    labels = ids.clone()
    labels[mask == 0] = -100
    labels[2, :4] = -100
    return dict(input_ids=ids.tolist(), attention_mask=mask.tolist(), labels=labels.tolist())


def init_weights(model: LlamaForCausalLM, gen: torch.Generator) -> None:
    """Activations of order 1 and peaked softmaxes instead of HF's N(0, 0.02)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("embed_tokens.weight") or name == "lm_head.weight":
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
            elif "norm" in name:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1]))


def lora_params(model) -> dict:
    """Trainable parameters under PEFT's saved names (DoRA's magnitude is saved without `.weight`)."""
    return {n.replace(".default", "").replace(".lora_magnitude_vector.weight", ".lora_magnitude_vector"): p
            for n, p in model.named_parameters() if p.requires_grad}


def save_adapter(model, path: str) -> None:
    model.save_pretrained(path)
    readme = os.path.join(path, "README.md")
    if os.path.exists(readme):
        os.remove(readme)


def forward_loss(model, batch: dict):
    out = model(input_ids=batch["ids"], attention_mask=batch["mask"], labels=batch["labels"])
    return out.logits, out.loss


def generate_runs(model, prompts: list) -> list:
    runs = []
    for prompt in prompts:
        ids = torch.tensor([prompt])
        for beams in (1, 2, 4):
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=MAX_NEW,
                                 do_sample=False, num_beams=beams, eos_token_id=None, pad_token_id=0)
            runs.append(dict(prompt=prompt, num_beams=beams, eos_token_id=None, new_tokens=out[0, len(prompt):].tolist()))
    return runs


def eval_loss(model, ids: list) -> float:
    with torch.no_grad():
        t = torch.tensor([ids])
        return model(input_ids=t, labels=t).loss.item()


def make_case(case: Case, root: str) -> None:
    out = os.path.join(root, case.name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    torch.manual_seed(case.seed)
    gen = torch.Generator().manual_seed(case.seed)
    config = LlamaConfig(**case.llama)
    config._attn_implementation = "eager"
    model = LlamaForCausalLM(config).float().eval()
    init_weights(model, gen)
    config.save_pretrained(out)
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()
          if not (config.tie_word_embeddings and k == "lm_head.weight")}
    safetensors.torch.save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})

    inputs = make_inputs(gen, config.vocab_size)
    with open(os.path.join(out, "inputs.json"), "w") as f:
        json.dump(inputs, f)
        f.write("\n")
    batch = dict(ids=torch.tensor(inputs["input_ids"]), mask=torch.tensor(inputs["attention_mask"]),
                 labels=torch.tensor(inputs["labels"]))
    with torch.no_grad():
        logits_base = model(input_ids=batch["ids"], attention_mask=batch["mask"]).logits
        n_real = int(batch["mask"][1].sum())
        alone = model(input_ids=batch["ids"][1:2, :n_real]).logits
        assert torch.allclose(alone[0], logits_base[1, :n_real], atol=1e-5), "padding semantics changed"
    prompts = [torch.randint(3, config.vocab_size, (n,), generator=gen).tolist() for n in PROMPT_LENGTHS]
    base_runs = generate_runs(model, prompts)
    from tokenizers import Tokenizer

    eval_ids = Tokenizer.from_file(EVAL_TOKENIZER).encode(EVAL_TEXT).ids
    evals = dict(text=EVAL_TEXT, tokenizer=EVAL_TOKENIZER, ids=eval_ids, base_loss=eval_loss(model, eval_ids))

    model.name_or_path = f"test/fixtures/llama/{case.name}"
    model.config._name_or_path = model.name_or_path
    pmodel = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", bias="none", **case.lora))
    params = lora_params(pmodel)
    with torch.no_grad():
        # A random non-zero B (PEFT starts it at 0, which would zero every lora_A gradient).
        for n, p in params.items():
            if ".lora_B." in n:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    save_adapter(pmodel, os.path.join(out, "adapter_init"))
    pmodel.eval()
    adapter_runs = generate_runs(pmodel, prompts)
    evals["adapter_loss"] = eval_loss(pmodel, eval_ids)
    with open(os.path.join(out, "eval.json"), "w") as f:
        json.dump(evals, f, indent=1, sort_keys=True)
        f.write("\n")

    pmodel.train()
    logits, loss = forward_loss(pmodel, batch)
    loss.backward()
    shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1])
    shift_labels = batch["labels"][:, 1:].reshape(-1)
    loss_sum = F.cross_entropy(shift_logits.float(), shift_labels, ignore_index=-100, reduction="sum")
    supervised = int((shift_labels != -100).sum())
    expected = {
        "logits": logits.detach().float().contiguous(),
        "logits_base": logits_base.float().contiguous(),
        "loss": loss.detach().float().reshape(()),
        "loss_sum": loss_sum.detach().float().reshape(()),
        "supervised_tokens": torch.tensor(supervised, dtype=torch.int64),
    }
    for n, p in params.items():
        expected[n] = p.grad.detach().float().contiguous()

    opt = torch.optim.AdamW(list(params.values()), lr=RECIPE["lr"], betas=tuple(RECIPE["betas"]), eps=RECIPE["eps"],
                            weight_decay=RECIPE["weight_decay"], foreach=False)
    step_losses = []
    for _ in range(RECIPE["steps"]):
        opt.zero_grad()
        _, step_loss = forward_loss(pmodel, batch)
        step_loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), RECIPE["max_grad_norm"])
        opt.step()
        step_losses.append(step_loss.item())
    expected["step_losses"] = torch.tensor(step_losses, dtype=torch.float32)
    save_adapter(pmodel, os.path.join(out, "adapter_step3"))
    safetensors.torch.save_file(expected, os.path.join(out, "expected.safetensors"), metadata={"format": "pt"})

    # merge_and_unload of adapter_init (a fresh base + the saved adapter): the merged Linear weights.
    fresh = LlamaForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    adapted = peft.PeftModel.from_pretrained(fresh, os.path.join(out, "adapter_init")).eval()
    with torch.no_grad():
        want = adapted(input_ids=batch["ids"], attention_mask=batch["mask"]).logits
    merged = adapted.merge_and_unload()
    with torch.no_grad():
        got = merged(input_ids=batch["ids"], attention_mask=batch["mask"]).logits
    merged_sd = {k: v.detach().contiguous() for k, v in merged.state_dict().items()
                 if any(f".{m}.weight" in k for m in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"))}
    safetensors.torch.save_file(merged_sd, os.path.join(out, "merged.safetensors"), metadata={"format": "pt"})

    with open(os.path.join(out, "generate.json"), "w") as f:
        json.dump(dict(max_new_tokens=MAX_NEW, base=base_runs, adapter=adapter_runs), f, indent=1, sort_keys=True)
        f.write("\n")
    recipe = dict(RECIPE, case=case.name, seed=case.seed, lora=dict(case.lora), notes=case.notes,
                  merged_logits_max_abs_diff=(got - want).abs().max().item(),
                  versions=dict(torch=torch.__version__, transformers=transformers.__version__, peft=peft.__version__))
    with open(os.path.join(out, "recipe.json"), "w") as f:
        json.dump(recipe, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"{case.name}: loss {loss.item():.6f} over {supervised} tokens; step losses {step_losses}; "
          f"merged logits vs PEFT {recipe['merged_logits_max_abs_diff']:.2e}")


def main() -> None:
    # PEFT stores target_modules as a set; its saved order follows Python's string hashing.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="test/fixtures/llama")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    for case in CASES:
        make_case(case, args.out)


if __name__ == "__main__":
    main()
