"""What PEFT 0.21 writes when it merges on a half-precision base, for `lora-mpt merge --dtype`: the bf16
fixture model (test/fixtures/mpt/h8-clip-bf16) loaded with dtype=bfloat16 (and float16), the adapter
loaded with PeftModel.from_pretrained, merge_and_unload(), and the merged state dict as stored. Also the
logits of PEFT's bf16 merged model computed in float32 (its bf16 weights upcast, as lora-mpt computes),
on the case's inputs.json. Writes test/fixtures/merge-dtype/ (about 150 KB):

  lora-rslora-h8.bf16.safetensors   every tensor of PEFT's merged model, BF16 (LoRA + rsLoRA adapter)
  lora-rslora-h8.f16.safetensors    the same merge on the base loaded as float16, F16
  dora-rslora-h8.bf16.safetensors   the DoRA + rsLoRA merge in BF16, the adapted Linear weights only
  lora-rslora-h8.bf16-logits.safetensors  `logits` of the bf16 merged model, float32
  recipe.json                       versions, what each file is, PEFT's adapter-weight dtype

Run: /opt/refpy/bin/python tools/reference/make_merge_dtype_fixtures.py [--out test/fixtures/merge-dtype]
"""

import argparse
import json
import os

import peft
import safetensors.torch
import torch
import transformers
from peft import PeftModel
from transformers import MptForCausalLM

BASE = "test/fixtures/mpt/h8-clip-bf16"
ADAPTERS = "test/fixtures/adapters"


def peft_merged(adapter: str, dtype: torch.dtype):
    base = MptForCausalLM.from_pretrained(BASE, dtype=dtype, attn_implementation="eager").eval()
    model = PeftModel.from_pretrained(base, os.path.join(ADAPTERS, adapter)).eval()
    lora_b = next(p for n, p in model.named_parameters() if ".lora_B." in n)
    merged = model.merge_and_unload()
    state = {k: v.detach().contiguous() for k, v in merged.state_dict().items() if k.startswith("transformer.")}
    assert all(v.dtype == dtype for v in state.values()), f"{adapter}: PEFT's merged weights are not all {dtype}"
    return merged, state, str(lora_b.dtype)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="test/fixtures/merge-dtype")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    save = lambda tensors, name: safetensors.torch.save_file(tensors, os.path.join(args.out, name), metadata={"format": "pt"})

    merged, state, adapter_dtype = peft_merged("lora-rslora-h8", torch.bfloat16)
    save(state, "lora-rslora-h8.bf16.safetensors")
    inputs = json.load(open(os.path.join(BASE, "inputs.json")))
    with torch.no_grad():
        logits = merged.float()(input_ids=torch.tensor(inputs["input_ids"]),
                                attention_mask=torch.tensor(inputs["attention_mask"])).logits
    save({"logits": logits.contiguous()}, "lora-rslora-h8.bf16-logits.safetensors")

    _, state16, _ = peft_merged("lora-rslora-h8", torch.float16)
    save(state16, "lora-rslora-h8.f16.safetensors")

    _, dora, _ = peft_merged("dora-rslora-h8", torch.bfloat16)
    changed = json.load(open(os.path.join(ADAPTERS, "dora-rslora-h8", "variant.json")))["merged_weights"]
    save({k: dora[k] for k in changed}, "dora-rslora-h8.bf16.safetensors")

    recipe = dict(
        base=BASE,
        how="MptForCausalLM.from_pretrained(base, dtype=D); PeftModel.from_pretrained(base, adapter); merge_and_unload(); state_dict()",
        peft_adapter_weight_dtype=adapter_dtype,
        files={
            "lora-rslora-h8.bf16.safetensors": "every transformer.* tensor, D=bfloat16, adapter test/fixtures/adapters/lora-rslora-h8",
            "lora-rslora-h8.f16.safetensors": "every transformer.* tensor, D=float16 (the bf16 base converted by transformers)",
            "dora-rslora-h8.bf16.safetensors": "the adapted weights, D=bfloat16, adapter test/fixtures/adapters/dora-rslora-h8",
            "lora-rslora-h8.bf16-logits.safetensors": "logits of the bf16 merged model upcast to float32, on the base's inputs.json",
        },
        versions=dict(torch=torch.__version__, transformers=transformers.__version__, peft=peft.__version__),
    )
    with open(os.path.join(args.out, "recipe.json"), "w") as f:
        json.dump(recipe, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"wrote {args.out}: PEFT held the adapter weights as {adapter_dtype}")


if __name__ == "__main__":
    main()
