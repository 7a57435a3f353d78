"""The fixture of the generate page's Llama test (test/serve/browser.test.ts): a tiny random Llama 3
(GQA 4/2 heads, tied embeddings, rope_type llama3) whose vocabulary is the llama-tok Llama 3 tokenizer
(test/data/fixtures/llama-tok/llama3, made by make_llama_tokenizer_fixtures.py), and what
alpaca-lora's generate.py shows for one instruction: the prompt from its alpaca template, encoded by
HF `tokenizers` (BOS from the post-processor), transformers' greedy and 4-beam `generate` (EOS
<|end_of_text|> from tokenizer_config.json), decoded and split on the response marker as its
Prompter does. Writes test/fixtures/generate/llama3-page/{config.json, model.safetensors, page.json}.

Run: /opt/refpy/bin/python tools/reference/make_llama_page_fixture.py
"""

import json
import math
import os
import shutil

import safetensors.torch
import torch
from tokenizers import Tokenizer
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
TOK_DIR = os.path.join(ROOT, "test", "data", "fixtures", "llama-tok", "llama3")
OUT = os.path.join(ROOT, "test", "fixtures", "generate", "llama3-page")
INSTRUCTION = "Name three colours."
MAX_NEW = 16
SEED = int(os.environ.get("SEED", "2626"))
EMBED_STD = float(os.environ.get("EMBED_STD", "0.1"))
# alpaca-lora's templates/alpaca.json, prompt_no_input and response_split.
PROMPT = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
          "request.\n\n### Instruction:\n{instruction}\n\n### Response:\n")
SPLIT = "### Response:"


def init_weights(model: LlamaForCausalLM, gen: torch.Generator) -> None:
    """Peaked softmaxes (large top-1/top-2 gaps) instead of HF's N(0, 0.02), as make_llama_fixtures.py."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("embed_tokens.weight"):
                p.copy_(torch.randn(p.shape, generator=gen) * EMBED_STD)
            elif "norm" in name:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1]))


def min_gap(model, ids: torch.Tensor) -> float:
    """The smallest top-1 minus top-2 logit along a decoded path: how far it is from a tie."""
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]
    top = logits.topk(2, dim=-1).values
    return float((top[:, 0] - top[:, 1]).min())


def main() -> None:
    tok = Tokenizer.from_file(os.path.join(TOK_DIR, "tokenizer.json"))
    with open(os.path.join(TOK_DIR, "tokenizer_config.json")) as f:
        tok_config = json.load(f)
    bos = tok.token_to_id(tok_config["bos_token"])
    eos = tok.token_to_id(tok_config["eos_token"])
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=tok.get_vocab_size(), max_position_embeddings=256,
                         rms_norm_eps=1e-5, bos_token_id=bos, eos_token_id=eos, tie_word_embeddings=True,
                         rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0,
                                              low_freq_factor=1.0, high_freq_factor=4.0,
                                              original_max_position_embeddings=64))
    config._attn_implementation = "eager"
    model = LlamaForCausalLM(config).float().eval()
    init_weights(model, gen)

    prompt_text = PROMPT.format(instruction=INSTRUCTION)
    prompt = tok.encode(prompt_text).ids
    assert prompt[0] == bos, "the Llama 3 post-processor adds <|begin_of_text|>"
    ids = torch.tensor([prompt])
    runs = []
    for beams in (1, 4):
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=MAX_NEW,
                             do_sample=False, num_beams=beams, eos_token_id=eos, pad_token_id=eos)
        new = out[0, len(prompt):].tolist()
        text = tok.decode(prompt + new, skip_special_tokens=True).split(SPLIT)[1].strip()
        runs.append(dict(num_beams=beams, new_tokens=new, answer=text))
    gap = min_gap(model, torch.tensor([prompt + runs[0]["new_tokens"]]))
    assert gap > 1e-3, f"greedy path within {gap} of a tie: pick another SEED"

    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    config.save_pretrained(OUT)
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    safetensors.torch.save_file(sd, os.path.join(OUT, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(OUT, "page.json"), "w") as f:
        json.dump(dict(instruction=INSTRUCTION, prompt=prompt, max_new_tokens=MAX_NEW, eos_token_id=eos,
                       min_greedy_gap=gap, runs=runs), f, indent=1)
        f.write("\n")
    print(json.dumps(runs, indent=1), "min gap", gap)


if __name__ == "__main__":
    main()
