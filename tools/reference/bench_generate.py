"""Transformers peer of bench/generate.ts: greedy (or --beams N beam search) `generate` of --new tokens after a given prompt with
HF transformers' native MptForCausalLM (+ a PEFT adapter), float32, eager attention, with or without
the KV cache, on --threads threads. Prints one JSON line per run: {"cache", "ms", "tokens", "ids"}.

Run: /opt/refpy/bin/python tools/reference/bench_generate.py --model DIR --adapter DIR --prompt 1,2,3 --new 128 --threads 1 --runs 3
"""

import argparse
import json
import time

import torch
from peft import PeftModel
from transformers import MptForCausalLM


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--adapter")
    ap.add_argument("--prompt", required=True, help="comma-separated token ids")
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--beams", type=int, default=1)
    ap.add_argument("--cache", choices=["on", "off", "both"], default="both")
    ap.add_argument("--runs", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = MptForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation="eager").eval()
    if a.adapter:
        model = PeftModel.from_pretrained(model, a.adapter).eval()
    ids = torch.tensor([[int(x) for x in a.prompt.split(",")]])

    def run(use_cache: bool):
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=a.new,
                                 min_new_tokens=a.new, do_sample=False, num_beams=a.beams, use_cache=use_cache,
                                 pad_token_id=0)
        ms = (time.perf_counter() - t0) * 1000
        return ms, out[0, ids.shape[1]:].tolist()

    run(True)  # warm-up
    for use_cache in [True, False] if a.cache == "both" else [a.cache == "on"]:
        for _ in range(a.runs if use_cache else 1):
            ms, new = run(use_cache)
            print(json.dumps({"cache": use_cache, "ms": ms, "tokens": len(new), "ids": new, "threads": a.threads}), flush=True)


if __name__ == "__main__":
    main()
