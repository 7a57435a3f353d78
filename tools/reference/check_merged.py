"""Checks a directory written by `lora-mpt merge` with Hugging Face transformers + PEFT: it loads with
MptForCausalLM.from_pretrained (and AutoTokenizer when it has tokenizer files), its logits equal
PeftModel(base, adapter) within --tol, and its weights equal PEFT's merge_and_unload. Prints one JSON
object; exits 1 when a check fails.

Run: /opt/refpy/bin/python tools/reference/check_merged.py --merged D --base M --adapter A [--inputs inputs.json]
"""

import argparse
import json
import os
import sys

import torch
from peft import PeftModel
from transformers import AutoTokenizer, MptForCausalLM


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--merged", required=True)
    ap.add_argument("--base", required=True)
    ap.add_argument("--adapter", required=True)
    ap.add_argument("--inputs", help="inputs.json with input_ids and attention_mask (default: random ids)")
    ap.add_argument("--tol", type=float, default=1e-5)
    args = ap.parse_args()
    torch.set_num_threads(1)

    merged = MptForCausalLM.from_pretrained(args.merged, dtype=torch.float32, attn_implementation="eager").eval()
    base = MptForCausalLM.from_pretrained(args.base, dtype=torch.float32, attn_implementation="eager").eval()
    peft_model = PeftModel.from_pretrained(base, args.adapter).eval()
    if args.inputs:
        inputs = json.load(open(args.inputs))
        ids = torch.tensor(inputs["input_ids"])
        mask = torch.tensor(inputs["attention_mask"])
    else:
        gen = torch.Generator().manual_seed(0)
        ids = torch.randint(0, merged.config.vocab_size, (2, 16), generator=gen)
        mask = torch.ones_like(ids)
    with torch.no_grad():
        want = peft_model(input_ids=ids, attention_mask=mask).logits
        got = merged(input_ids=ids, attention_mask=mask).logits
    logits_gap = (got - want).abs().max().item()
    reference = peft_model.merge_and_unload().state_dict()
    weights_gap = max((merged.state_dict()[k] - v).abs().max().item() for k, v in reference.items())
    result = dict(
        merged=args.merged,
        logits_max_abs_diff=logits_gap,
        logits_max_abs=want.abs().max().item(),
        weights_max_abs_diff=weights_gap,
        tol=args.tol,
    )
    if os.path.exists(os.path.join(args.merged, "tokenizer.json")):
        tok = AutoTokenizer.from_pretrained(args.merged)
        result["tokenizer"] = type(tok).__name__
        result["tokenizer_ids_of_hello"] = tok("Hello world").input_ids
    result["ok"] = logits_gap <= args.tol and weights_gap <= args.tol
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
