#!/usr/bin/env python3
"""Fixture for tokenize-example.ts: alpaca-lora's tokenize / generate_and_tokenize_prompt
(finetune.py @8bb8579), run with a transformers fast tokenizer built from GPT-NeoX's tokenizer.json
(eos = <|endoftext|> = 0, as for MPT), on 60 Alpaca records under five flag sets, including cutoffs
that truncate inside the prompt.

Run from the repository root:  /opt/refpy/bin/python tools/reference/alpaca_lora_masks.py
Writes test/data/fixtures/alpaca-lora-masks.json.gz.

With --family llama2 or llama3 it runs the same functions with transformers' AutoTokenizer on the
Llama-family fixture (test/data/fixtures/llama-tok/<family>/: BOS added, EOS </s> or <|end_of_text|>)
and writes test/data/fixtures/llama-tok/alpaca-lora-masks-<family>.json.gz.
"""
import argparse
import gzip
import json
import random
from pathlib import Path

import transformers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

ROOT = Path(__file__).resolve().parents[2]
ap = argparse.ArgumentParser()
ap.add_argument("--family", choices=["neox", "llama2", "llama3"], default="neox")
FAMILY = ap.parse_args().family
if FAMILY == "neox":
    OUT = ROOT / "test" / "data" / "fixtures" / "alpaca-lora-masks.json.gz"
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(ROOT.parent / "shared/data/gpt-neox-20b/tokenizer.json"),
                                        eos_token="<|endoftext|>")
else:
    OUT = ROOT / "test" / "data" / "fixtures" / "llama-tok" / f"alpaca-lora-masks-{FAMILY}.json.gz"
    tokenizer = AutoTokenizer.from_pretrained(str(ROOT / "test" / "data" / "fixtures" / "llama-tok" / FAMILY))
template = json.loads((ROOT / "src/data/templates/alpaca.json").read_text())


def generate_prompt(instruction, input=None, label=None):  # utils/prompter.py
    res = template["prompt_input"].format(instruction=instruction, input=input) if input else \
        template["prompt_no_input"].format(instruction=instruction)
    return f"{res}{label}" if label else res


def make(cutoff_len, train_on_inputs, add_eos_token):  # finetune.py, literally
    def tokenize(prompt, add_eos_token=True):
        result = tokenizer(prompt, truncation=True, max_length=cutoff_len, padding=False, return_tensors=None)
        if (result["input_ids"][-1] != tokenizer.eos_token_id and len(result["input_ids"]) < cutoff_len
                and add_eos_token):
            result["input_ids"].append(tokenizer.eos_token_id)
            result["attention_mask"].append(1)
        result["labels"] = result["input_ids"].copy()
        return result

    def generate_and_tokenize_prompt(data_point):
        full_prompt = generate_prompt(data_point["instruction"], data_point["input"], data_point["output"])
        tokenized_full_prompt = tokenize(full_prompt)
        if not train_on_inputs:
            user_prompt = generate_prompt(data_point["instruction"], data_point["input"])
            tokenized_user_prompt = tokenize(user_prompt, add_eos_token=add_eos_token)
            user_prompt_len = len(tokenized_user_prompt["input_ids"])
            if add_eos_token:
                user_prompt_len -= 1
            tokenized_full_prompt["labels"] = [-100] * user_prompt_len + tokenized_full_prompt["labels"][user_prompt_len:]
        return tokenized_full_prompt

    return generate_and_tokenize_prompt


records = json.loads((ROOT.parent / "shared/data/alpaca_data.json").read_text())
rng = random.Random(11)
longest = sorted(range(len(records)), key=lambda i: -sum(len(records[i][k]) for k in ("instruction", "input", "output")))[:20]
chosen = sorted(set(longest) | set(rng.sample(range(len(records)), 40)))
configs = [(32, False, True), (32, False, False), (64, False, True), (128, False, False), (256, True, False)]
cases = []
for cutoff, toi, eos in configs:
    fn = make(cutoff, toi, eos)
    for i in chosen:
        r = fn(records[i])
        cases.append({"index": i, "cutoff_len": cutoff, "train_on_inputs": toi, "add_eos_token": eos,
                      "input_ids": r["input_ids"], "labels": r["labels"]})
with gzip.GzipFile(OUT, "wb", compresslevel=9, mtime=0) as f:
    meta = {"transformers_version": transformers.__version__, "cases": cases}
    if FAMILY != "neox":
        meta.update(tokenizer_class=type(tokenizer).__name__, eos_token_id=tokenizer.eos_token_id,
                    bos_token_id=tokenizer.bos_token_id)
    f.write(json.dumps(meta).encode())
print(f"wrote {OUT.relative_to(ROOT)}: {len(cases)} cases, {OUT.stat().st_size} bytes")
