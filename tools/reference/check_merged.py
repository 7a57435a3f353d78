"""Checks a directory written by `lora-mpt merge` with Hugging Face transformers + PEFT: it loads with
AutoModelForCausalLM.from_pretrained (MptForCausalLM, LlamaForCausalLM; and AutoTokenizer when it has tokenizer files), its logits equal
PeftModel(base, adapter) within --tol, and its weights equal PEFT's merge_and_unload. Prints one JSON
object; exits 1 when a check fails.

With --dtype bfloat16|float16 (a merge written with that --dtype, or auto on such a base) the reference
is PEFT merging on the base loaded in that dtype, as a user does it (from_pretrained(base,
dtype=torch.bfloat16), PeftModel.from_pretrained, merge_and_unload): the merged weights must be equal
bit for bit (differing elements reported; --max_differing allows some, for DoRA), the directory must
load as that dtype from its config.json (dtype="auto") with every stored tensor tagged so, and the
logits of both merged models (upcast to float32) are compared, and with PEFT's float32 base + adapter
(what the rounding to half precision costs).

Run: /opt/refpy/bin/python tools/reference/check_merged.py --merged D --base M --adapter A [--inputs inputs.json]
     [--dtype bfloat16 [--max_differing 0]]
"""

import argparse
import glob
import json
import os
import sys

import torch
from peft import PeftModel
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load(path: str, dtype):
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="eager").eval()


def logits_of(model, ids, mask) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits.float()


def stored_dtypes(merged_dir: str) -> dict:
    counts: dict = {}
    for f in sorted(glob.glob(os.path.join(merged_dir, "*.safetensors"))):
        with safe_open(f, "pt") as st:
            for k in st.keys():
                tag = st.get_slice(k).get_dtype()
                counts[tag] = counts.get(tag, 0) + 1
    return counts


def check_half(args, ids, mask, result: dict) -> bool:
    dtype = DTYPES[args.dtype]
    merged = load(args.merged, "auto")
    loaded_as_dtype = merged.dtype == dtype  # before .float() below converts the model in place
    result["loaded_dtype"] = str(merged.dtype)
    result["stored_dtypes"] = stored_dtypes(args.merged)
    reference = PeftModel.from_pretrained(load(args.base, dtype), args.adapter).eval().merge_and_unload()
    ours, theirs = merged.state_dict(), reference.state_dict()
    differing = total = 0
    for k, v in theirs.items():
        a, b = ours[k], v
        assert a.dtype == b.dtype == dtype, f"{k}: ours {a.dtype}, PEFT's {b.dtype}"
        differing += int((a.view(torch.int16) != b.view(torch.int16)).sum())
        total += v.numel()
    result["weights_differing_elements"] = differing
    result["weights_elements"] = total
    want = logits_of(reference.float(), ids, mask)
    got = logits_of(merged.float(), ids, mask)
    adapter_f32 = PeftModel.from_pretrained(load(args.base, torch.float32), args.adapter).eval()
    exact = logits_of(adapter_f32, ids, mask)
    result["logits_max_abs_diff_vs_peft_merged"] = (got - want).abs().max().item()
    result["logits_max_abs_diff_vs_float32_adapter"] = (got - exact).abs().max().item()
    result["logits_max_abs"] = exact.abs().max().item()
    tag = {"bfloat16": "BF16", "float16": "F16"}[args.dtype]
    return (
        loaded_as_dtype
        and set(result["stored_dtypes"]) == {tag}
        and differing <= args.max_differing
        and result["logits_max_abs_diff_vs_peft_merged"] <= args.tol
    )


def check_float32(args, ids, mask, result: dict) -> bool:
    merged = load(args.merged, torch.float32)
    peft_model = PeftModel.from_pretrained(load(args.base, torch.float32), args.adapter).eval()
    want = logits_of(peft_model, ids, mask)
    got = logits_of(merged, ids, mask)
    logits_gap = (got - want).abs().max().item()
    reference = peft_model.merge_and_unload().state_dict()
    weights_gap = max((merged.state_dict()[k] - v).abs().max().item() for k, v in reference.items())
    result.update(logits_max_abs_diff=logits_gap, logits_max_abs=want.abs().max().item(), weights_max_abs_diff=weights_gap)
    return logits_gap <= args.tol and weights_gap <= args.tol


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--merged", required=True)
    ap.add_argument("--base", required=True)
    ap.add_argument("--adapter", required=True)
    ap.add_argument("--inputs", help="inputs.json with input_ids and attention_mask (default: random ids)")
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="the dtype the merge was written in")
    ap.add_argument("--max_differing", type=int, default=0, help="half precision: weight elements allowed to differ")
    args = ap.parse_args()
    torch.set_num_threads(1)

    if args.inputs:
        inputs = json.load(open(args.inputs))
        ids = torch.tensor(inputs["input_ids"])
        mask = torch.tensor(inputs["attention_mask"])
    else:
        vocab = json.load(open(os.path.join(args.merged, "config.json")))["vocab_size"]
        gen = torch.Generator().manual_seed(0)
        ids = torch.randint(0, vocab, (2, 16), generator=gen)
        mask = torch.ones_like(ids)
    result = dict(merged=args.merged, dtype=args.dtype, tol=args.tol)
    ok = check_float32(args, ids, mask, result) if args.dtype == "float32" else check_half(args, ids, mask, result)
    if os.path.exists(os.path.join(args.merged, "tokenizer.json")):
        tok = AutoTokenizer.from_pretrained(args.merged)
        result["tokenizer"] = type(tok).__name__
        result["tokenizer_ids_of_hello"] = tok("Hello world").input_ids
    result["ok"] = ok
    print(json.dumps(result))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
