"""PyTorch + PEFT peer of bench/train-step.ts: one LoRA training step (forward + backward) of an MPT with
HF transformers' native MptForCausalLM, float32, eager attention, torch.set_num_threads(1) (or --threads),
same shapes and label masking (--use_dora: PEFT's DoRA instead of plain LoRA). Prints one JSON line: {"stepMs": median, "threads": n, "steps": [...]}.
With --serve it prints {"ready": true} after one warm-up step, then runs one step per line read from
stdin and prints {"ms": ...} for each, so a caller can interleave its own steps with these.
"""

import sys

import argparse
import json
import statistics
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import MptConfig, MptForCausalLM


def main() -> None:
    ap = argparse.ArgumentParser()
    for k, v in dict(d=512, h=8, l=4, v=50432, t=256, b=4, r=8, steps=5, threads=1).items():
        ap.add_argument(f"--{k}", type=int, default=v)
    ap.add_argument("--prompt_fraction", type=float, default=0.4)
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--use_dora", action="store_true", help="a DoRA adapter (PEFT's use_dora=True)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    config = MptConfig(d_model=a.d, n_heads=a.h, n_layers=a.l, vocab_size=a.v, max_seq_len=2048, expansion_ratio=4)
    config._attn_implementation = "eager"
    model = MptForCausalLM(config).float()
    lcfg = LoraConfig(r=a.r, lora_alpha=16, lora_dropout=0.0, target_modules=["Wqkv"], bias="none", task_type="CAUSAL_LM", use_dora=a.use_dora)
    model = get_peft_model(model, lcfg)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.01)
    model.train()
    ids = torch.randint(0, a.v, (a.b, a.t))
    labels = ids.clone()
    labels[:, : int(a.prompt_fraction * a.t)] = -100
    mask = torch.ones_like(ids)

    def step() -> float:
        t0 = time.perf_counter()
        model.zero_grad(set_to_none=True)
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        return (time.perf_counter() - t0) * 1000

    step()  # warm-up
    if a.serve:
        print(json.dumps({"ready": True, "threads": a.threads}), flush=True)
        for _ in sys.stdin:
            print(json.dumps({"ms": step()}), flush=True)
        return
    times = [step() for _ in range(a.steps)]
    print(json.dumps({"stepMs": statistics.median(times), "threads": a.threads, "steps": times}))


if __name__ == "__main__":
    main()
