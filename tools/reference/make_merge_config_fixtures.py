"""Writes test/fixtures/merge-configs/: the generation_config.json and tokenizer_config.json that
transformers writes (save_pretrained) for a merged MPT, and where transformers' generate stops on it.

How a user of transformers makes them: load the base with MptForCausalLM.from_pretrained (its
generation config comes from config.json), merge PEFT's adapter (merge_and_unload), set the
generation config's bos/eos to the tokenizer's (GPTNeoXTokenizer: bos = eos = unk = <|endoftext|>),
save_pretrained the model and the tokenizer (model_max_length = max_seq_len, as MPT ships it).

Cases, on test/fixtures/mpt/h6-all + its adapter_step3:
  neox/  the GPT-NeoX tokenizer.json of the shared data folder (EOS = <|endoftext|> = 0, MPT's).
  llama2/ test/fixtures/llama/gqa-untied-default + its adapter_step3 merged, saved with the Llama 2
         fixture tokenizer (test/data/fixtures/llama-tok/llama2, LlamaTokenizerFast as
         AutoTokenizer loads it: bos <s>, eos </s>): its generation_config.json.
  stop/  a 96-token byte-level tokenizer (test/fixtures/generate/cli/tokenizer.json) with
         <|endoftext|> moved to a token greedy decoding meets after two or more and <|padding|>
         to one it does not meet, so decoding stops there; generate.json: the prompt, and the
         tokens transformers' generate gives on the saved folder with no eos passed (it reads
         generation_config.json).

Run: /opt/refpy/bin/python tools/reference/make_merge_config_fixtures.py [--out DIR] [--neox_tokenizer PATH]
"""

import argparse
import json
import os
import shutil
import tempfile

import torch
import transformers
from peft import PeftModel
from transformers import GPTNeoXTokenizer, MptForCausalLM

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
BASE = os.path.join(ROOT, "test/fixtures/mpt/h6-all")
ADAPTER = os.path.join(BASE, "adapter_step3")
CLI_TOKENIZER = os.path.join(ROOT, "test/fixtures/generate/cli/tokenizer.json")
MAX_NEW = 12


def merged_model():
    base = MptForCausalLM.from_pretrained(BASE, dtype=torch.float32, attn_implementation="eager")
    return PeftModel.from_pretrained(base, ADAPTER).eval().merge_and_unload()


def save_case(out: str, tokenizer_file: str, model) -> str:
    """Saves model + tokenizer as a user does; returns the folder (a temporary one)."""
    folder = tempfile.mkdtemp()
    tok = GPTNeoXTokenizer(
        tokenizer_file=tokenizer_file,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        model_max_length=model.config.max_seq_len,
    )
    model.generation_config.bos_token_id = tok.bos_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    os.makedirs(out, exist_ok=True)
    for name in ("generation_config.json", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(folder, name), os.path.join(out, name))
    return folder


def save_llama_case(out: str) -> None:
    """What a user of transformers saves for a merged Llama: the generation config from config.json
    with bos/eos set to the tokenizer's (Llama 2: <s> = 1, </s> = 2)."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    base_dir = os.path.join(ROOT, "test/fixtures/llama/gqa-untied-default")
    base = LlamaForCausalLM.from_pretrained(base_dir, dtype=torch.float32, attn_implementation="eager")
    model = PeftModel.from_pretrained(base, os.path.join(base_dir, "adapter_step3")).eval().merge_and_unload()
    tok = AutoTokenizer.from_pretrained(os.path.join(ROOT, "test/data/fixtures/llama-tok/llama2"))
    model.generation_config.bos_token_id = tok.bos_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    folder = tempfile.mkdtemp()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    os.makedirs(out, exist_ok=True)
    shutil.copyfile(os.path.join(folder, "generation_config.json"), os.path.join(out, "generation_config.json"))
    shutil.rmtree(folder)


def greedy(model, prompt: list) -> list:
    with torch.no_grad():
        ids = torch.tensor([prompt])
        # An explicit mask: generate would otherwise mask prompt tokens equal to pad_token_id.
        out = model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=MAX_NEW, do_sample=False, eos_token_id=None
        )
    return out[0, len(prompt):].tolist()


def stop_tokenizer(model, path: str) -> tuple:
    """The cli tokenizer with <|endoftext|> on a token greedy decoding meets after >= 2 new tokens
    (the first such prompt [a, b]: random tiny models often repeat one token from the start)."""
    for a in range(95):
        prompt = [a, (a * 7 + 3) % 95]
        out = greedy(model, prompt)
        at = next((k for k in range(2, MAX_NEW - 2) if out[k] not in out[:k] and out[k] != 95), None)
        if at is not None:
            break
    else:
        raise SystemExit("no prompt meets a new token after two")
    stop = out[at]
    pad = next(i for i in range(94, -1, -1) if i not in out and i not in prompt)
    t = json.load(open(CLI_TOKENIZER))
    vocab = t["model"]["vocab"]
    by_id = {i: s for s, i in vocab.items()}
    # <|endoftext|> (95) swaps ids with the stop token; <|padding|> replaces the pad token's text.
    # Both are in the vocabulary too, as in GPT-NeoX's tokenizer.json (GPTNeoXTokenizer renumbers
    # added tokens that are not).
    vocab.pop("<|endoftext|>", None)
    vocab[by_id[stop]] = 95
    del vocab[by_id[pad]]
    vocab["<|endoftext|>"] = stop
    vocab["<|padding|>"] = pad
    t["added_tokens"] = [
        {**t["added_tokens"][0], "id": stop},
        {**t["added_tokens"][0], "id": pad, "content": "<|padding|>"},
    ]
    json.dump(t, open(path, "w"), ensure_ascii=False, indent=2)
    return prompt, stop, out, at


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=os.path.join(ROOT, "test/fixtures/merge-configs"))
    p.add_argument(
        "--neox_tokenizer", default=os.path.join(ROOT, "..", "shared/data/gpt-neox-20b/tokenizer.json")
    )
    p.add_argument("--cases", default="neox,stop,llama2", help="comma-separated cases to write")
    a = p.parse_args()
    cases = a.cases.split(",")
    if "llama2" in cases:
        save_llama_case(os.path.join(a.out, "llama2"))
    torch.manual_seed(0)  # the MPT cases as before, whatever the Llama case drew
    if "neox" in cases:
        save_case(os.path.join(a.out, "neox"), a.neox_tokenizer, merged_model())
    if "stop" not in cases:
        return

    model = merged_model()
    os.makedirs(os.path.join(a.out, "stop"), exist_ok=True)
    tok_path = os.path.join(a.out, "stop", "tokenizer.json")
    prompt, stop, free_run, at = stop_tokenizer(model, tok_path)
    folder = save_case(os.path.join(a.out, "stop"), tok_path, model)
    reloaded = MptForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    with torch.no_grad():
        # No eos_token_id here: generate takes it from the saved generation_config.json.
        ids = torch.tensor([prompt])
        tokens = reloaded.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=MAX_NEW, do_sample=False)
    tokens = tokens[0, len(prompt):]
    tokens = tokens.tolist()
    assert tokens == free_run[: at + 1], (tokens, free_run)
    json.dump(
        {
            "prompt_ids": prompt,
            "max_new_tokens": MAX_NEW,
            "eos_token_id": stop,
            "tokens": tokens,
            "tokens_without_eos": free_run,
            "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
        },
        open(os.path.join(a.out, "stop", "generate.json"), "w"),
        indent=2,
    )
    print(f"stop at {stop} after {len(tokens)} tokens (free run {free_run})")


if __name__ == "__main__":
    main()
