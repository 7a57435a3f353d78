"""Writes test/fixtures/llama/flops.json: the matmul FLOPs torch executes for one LoRA training
micro-batch (forward + backward of the loss) of a random LlamaForCausalLM with PEFT, counted by
torch.utils.flop_counter.FlopCounterMode. The base weights are frozen, so autograd computes no
weight gradients for them and no input gradient below the lowest trained module: the count
lora-mpt's src/model/flops.ts models. Eager attention (two batched matmuls per layer).

Run: /opt/refpy/bin/python tools/reference/llama_flops.py [--out PATH]
"""

import argparse
import json
import os

import torch
import transformers
from peft import LoraConfig, get_peft_model
from torch.utils.flop_counter import FlopCounterMode
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")

GQA = dict(hidden_size=64, intermediate_size=176, num_attention_heads=8, num_key_value_heads=2, num_hidden_layers=3,
           vocab_size=320)
CASES = [
    # name, config, target_modules, rows, seq_len
    ("gqa-qv", dict(hidden_size=64, intermediate_size=176, num_attention_heads=8, num_key_value_heads=2,
                    num_hidden_layers=3, vocab_size=320), ["q_proj", "v_proj"], 2, 24),
    ("gqa-all", dict(hidden_size=64, intermediate_size=176, num_attention_heads=8, num_key_value_heads=2,
                     num_hidden_layers=3, vocab_size=320),
     ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], 2, 24),
    ("mha-qkv", dict(hidden_size=48, intermediate_size=128, num_attention_heads=4, num_key_value_heads=4,
                     num_hidden_layers=2, vocab_size=200), ["q_proj", "k_proj", "v_proj"], 3, 16),
    # Where the backward stops above the first block's q/k/v: the lowest target's group (down_proj; gate
    # alone, whose group-mate up_proj then gets no input gradient; o_proj, below which no attention
    # backward runs) or the lowest block with LoRA (layers_to_transform).
    ("gqa-down", GQA, ["down_proj"], 2, 24),
    ("gqa-gate", GQA, ["gate_proj"], 2, 24),
    ("gqa-o", GQA, ["o_proj", "up_proj"], 2, 24),
    ("gqa-qv-top", dict(GQA, layers_to_transform=[1, 2]), ["q_proj", "v_proj"], 2, 24),
]


def count(cfg: dict, targets: list, rows: int, seq_len: int) -> int:
    torch.manual_seed(0)
    cfg = dict(cfg)
    layers = cfg.pop("layers_to_transform", None)
    config = LlamaConfig(max_position_embeddings=64, tie_word_embeddings=False, **cfg)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.config._attn_implementation = "eager"
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets,
                                             layers_to_transform=layers))
    model.train()
    ids = torch.randint(0, cfg["vocab_size"], (rows, seq_len))
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
    return counter.get_total_flops()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=os.path.join(ROOT, "test/fixtures/llama/flops.json"))
    a = p.parse_args()
    cases = []
    for name, cfg, targets, rows, seq_len in CASES:
        layers = cfg.get("layers_to_transform")
        cases.append({
            "name": name,
            **({"layers_to_transform": layers} if layers is not None else {}),
            "config": {**{k: v for k, v in cfg.items() if k != "layers_to_transform"}, "max_position_embeddings": 64, "tie_word_embeddings": False, "model_type": "llama",
                       "rms_norm_eps": 1e-5, "rope_theta": 10000.0},
            "target_modules": targets,
            "r": 4,
            "rows": rows,
            "seq_len": seq_len,
            "flops": count(cfg, targets, rows, seq_len),
        })
        print(name, cases[-1]["flops"])
    json.dump({"cases": cases, "versions": {"transformers": transformers.__version__, "torch": torch.__version__}},
              open(a.out, "w"), indent=2)


if __name__ == "__main__":
    main()
