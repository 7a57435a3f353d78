"""Golden decoding fixtures for lora-mpt's generate engine: what transformers' `generate` produces
(greedy and beam search, with and without an EOS token) on the committed MPT fixture models of
test/fixtures/mpt/<case>/, base alone and with PEFT's `adapter_init`, plus what transformers' logits
warpers (temperature, top-k, top-p, in its order) make of a row of logits. Writes
test/fixtures/generate/<case>.json; see tools/reference/README.md.

Run: /opt/refpy/bin/python tools/reference/make_generate_fixtures.py [--out test/fixtures/generate]
"""

import argparse
import json
import math
import os

import peft
import torch
import transformers
from peft import PeftModel
from transformers import MptForCausalLM
from transformers.generation.logits_process import (
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

CASES = ["h12-wqkv", "h6-all", "h8-clip-bf16"]
MAX_NEW = 16
# Two prompts per case: token ids drawn from the case's vocabulary (96) with a fixed generator.
PROMPT_LENGTHS = [5, 9]
# Warper settings checked against transformers' own processors: (temperature, top_k, top_p).
WARPERS = [(0.7, 10, 0.75), (1.0, 40, 0.9), (0.1, 40, 0.75), (1.3, 0, 0.5), (0.5, 5, 1.0)]


def load(case_dir: str, adapter: bool):
    model = MptForCausalLM.from_pretrained(case_dir, dtype=torch.float32, attn_implementation="eager").eval()
    if adapter:
        model = PeftModel.from_pretrained(model, os.path.join(case_dir, "adapter_init")).eval()
    return model


def generate(model, prompt: list, num_beams: int, eos, use_cache: bool = True) -> list:
    ids = torch.tensor([prompt])
    out = model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=MAX_NEW,
        do_sample=False,
        num_beams=num_beams,
        eos_token_id=eos,
        pad_token_id=eos if eos is not None else 0,
        use_cache=use_cache,
    )
    return out[0, len(prompt) :].tolist()


def greedy_margins(model, prompt: list, new: list) -> float:
    """Smallest gap between the best and second-best logit along the greedy path: how far from a tie
    each choice was (a port that differs by ~1e-6 in its logits must still choose the same)."""
    seq = torch.tensor([prompt + new])
    with torch.no_grad():
        logits = model(input_ids=seq).logits[0]
    gaps = []
    for i in range(len(new)):
        top2 = torch.topk(logits[len(prompt) - 1 + i], 2).values
        gaps.append((top2[0] - top2[1]).item())
    return min(gaps)


def pick_eos(sequences: list) -> int:
    """An EOS id that decoding will meet: the most frequent token among the generated ones after the
    first two (so some hypotheses end early and others run on)."""
    counts = {}
    for s in sequences:
        for t in s[2:]:
            counts[t] = counts.get(t, 0) + 1
    return max(sorted(counts), key=lambda t: counts[t])


def runs_for(model, prompts: list) -> list:
    runs = []
    for prompt in prompts:
        plain = {nb: generate(model, prompt, nb, None) for nb in (1, 2, 4)}
        for nb, new in plain.items():
            cached_off = generate(model, prompt, nb, None, use_cache=False)
            assert cached_off == new, "generate with and without the KV cache disagree"
        eos = pick_eos(list(plain.values()))
        runs.append(dict(prompt=prompt, num_beams=1, eos_token_id=None, new_tokens=plain[1],
                         min_greedy_margin=greedy_margins(model, prompt, plain[1])))
        for nb in (2, 4):
            runs.append(dict(prompt=prompt, num_beams=nb, eos_token_id=None, new_tokens=plain[nb]))
        for nb in (1, 3, 4):
            new = generate(model, prompt, nb, eos)
            run = dict(prompt=prompt, num_beams=nb, eos_token_id=eos, new_tokens=new)
            if nb == 1:
                run["min_greedy_margin"] = greedy_margins(model, prompt, new)
            runs.append(run)
    return runs


def warper_cases(model, prompt: list) -> list:
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt])).logits[0, -1:].float()
    # Scale the row so each warper cuts somewhere in the middle rather than after one token.
    logits = logits / logits.std() * 0.8
    out = []
    for temperature, top_k, top_p in WARPERS:
        procs = LogitsProcessorList()
        if temperature != 1.0:
            procs.append(TemperatureLogitsWarper(temperature))
        if top_k != 0:
            procs.append(TopKLogitsWarper(top_k=top_k, min_tokens_to_keep=1))
        if top_p < 1.0:
            procs.append(TopPLogitsWarper(top_p=top_p, min_tokens_to_keep=1))
        scores = procs(torch.tensor([prompt]), logits.clone())[0]
        kept = [i for i, v in enumerate(scores.tolist()) if math.isfinite(v)]
        out.append(dict(temperature=temperature, top_k=top_k, top_p=top_p, kept=kept,
                        scores=[scores[i].item() for i in kept]))
    return dict(logits=logits[0].tolist(), warpers=out)


def make_case(case: str, root: str, out_dir: str) -> None:
    case_dir = os.path.join(root, case)
    gen = torch.Generator().manual_seed(sum(map(ord, case)))
    vocab = json.load(open(os.path.join(case_dir, "config.json")))["vocab_size"]
    prompts = [torch.randint(1, vocab, (n,), generator=gen).tolist() for n in PROMPT_LENGTHS]
    base = load(case_dir, adapter=False)
    defaults = base.generation_config
    result = dict(
        case=case,
        max_new_tokens=MAX_NEW,
        generation_defaults=dict(length_penalty=defaults.length_penalty, early_stopping=defaults.early_stopping),
        base=runs_for(base, prompts),
        sampling=warper_cases(base, prompts[0]),
    )
    adapted = load(case_dir, adapter=True)
    result["adapter"] = runs_for(adapted, prompts)
    result["versions"] = dict(torch=torch.__version__, transformers=transformers.__version__, peft=peft.__version__)
    with open(os.path.join(out_dir, f"{case}.json"), "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")
    ends = sum(1 for r in result["base"] + result["adapter"] if r["eos_token_id"] in r["new_tokens"])
    print(f"{case}: {len(result['base']) + len(result['adapter'])} runs, {ends} stop at EOS")


# The command-line case: a fixture model cannot use the GPT-NeoX tokenizer (its vocabulary has 96
# ids), so the fixtures carry a byte-level BPE tokenizer without merges whose 95 symbols cover
# printable ASCII and newline (one token per character) plus <|endoftext|> (id 95, the EOS), and a
# short template that fits max_seq_len 32.
CLI_TEMPLATE = dict(
    description="A short question/answer template for the 32-token fixture models.",
    prompt_input="Q:{instruction}\nI:{input}\nA:",
    prompt_no_input="Q:{instruction}\nA:",
    response_split="A:",
)
CLI_CASE = "h6-all"
CLI_RUNS = [("hi", False, 1), ("hi", True, 1), ("hi", True, 4), ("Why?", True, 4)]


def byte_tokenizer():
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    # GPT-2's byte-to-symbol map: printable bytes stand for themselves, the others (newline 10 and
    # space 32 here) become chr(256 + their rank among the non-printable bytes).
    symbols = [chr(256 + 10), chr(256 + 32)] + [chr(b) for b in range(33, 126)]
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(symbols)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    assert tok.token_to_id("<|endoftext|>") == 95
    return tok


def make_cli(root: str, out_dir: str) -> None:
    cli = os.path.join(out_dir, "cli")
    os.makedirs(cli, exist_ok=True)
    tok = byte_tokenizer()
    tok.save(os.path.join(cli, "tokenizer.json"))
    with open(os.path.join(cli, "template.json"), "w") as f:
        json.dump(CLI_TEMPLATE, f, indent=2)
        f.write("\n")
    case_dir = os.path.join(root, CLI_CASE)
    models_ = {False: load(case_dir, adapter=False), True: load(case_dir, adapter=True)}
    runs = []
    for instruction, adapter, beams in CLI_RUNS:
        prompt = CLI_TEMPLATE["prompt_no_input"].format(instruction=instruction)
        ids = tok.encode(prompt).ids
        model = models_[adapter]
        out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=MAX_NEW, do_sample=False, num_beams=beams, eos_token_id=95,
                             pad_token_id=95)[0].tolist()
        # generate.py: tokenizer.decode(sequence) then prompter.get_response: split on the marker, [1], strip.
        answer = tok.decode(out, skip_special_tokens=True).split(CLI_TEMPLATE["response_split"])[1].strip()
        runs.append(dict(instruction=instruction, adapter=adapter, num_beams=beams, prompt_ids=ids,
                         new_tokens=out[len(ids):], answer=answer))
    with open(os.path.join(cli, "expected.json"), "w") as f:
        json.dump(dict(case=CLI_CASE, max_new_tokens=MAX_NEW, eos_token_id=95, runs=runs), f, indent=1)
        f.write("\n")
    print(f"cli: {[r['answer'] for r in runs]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", default="test/fixtures/mpt")
    ap.add_argument("--out", default="test/fixtures/generate")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    for case in CASES:
        make_case(case, args.models, args.out)
    make_cli(args.models, args.out)


if __name__ == "__main__":
    main()
