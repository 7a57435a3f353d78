"""Reference fixture for the host optimizer (src/train): torch.optim.AdamW with the Hugging Face
Trainer's defaults, transformers' linear warmup schedule and torch's clip_grad_norm_.

Writes test/fixtures/train/adamw.json. Run: /opt/refpy/bin/python tools/reference/make_train_fixtures.py
Deterministic (fixed seed). Not needed in CI; the JSON it writes is committed.
"""
import json
import pathlib

import torch
from transformers import get_linear_schedule_with_warmup

OUT = pathlib.Path(__file__).resolve().parents[2] / "test" / "fixtures" / "train" / "adamw.json"

torch.manual_seed(1234)
shapes = {"a": (3, 5), "b": (7, 3)}
params = {k: torch.nn.Parameter(torch.randn(s) * 0.1) for k, s in shapes.items()}
initial = {k: p.detach().clone() for k, p in params.items()}
opt = torch.optim.AdamW(list(params.values()), lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
steps, warmup = 6, 2
sched = get_linear_schedule_with_warmup(opt, num_warmup_steps=warmup, num_training_steps=steps)

records = []
for step in range(steps):
    # Alternate large and small gradients so that some steps clip and some do not.
    scale = 3.0 if step % 2 == 0 else 0.05
    grads = {k: torch.randn(s) * scale for k, s in shapes.items()}
    for k, p in params.items():
        p.grad = grads[k].clone()
    lr = opt.param_groups[0]["lr"]
    norm = torch.nn.utils.clip_grad_norm_(list(params.values()), max_norm=1.0)
    opt.step()
    sched.step()
    records.append({
        "lr": lr,
        "grad_norm": float(norm),
        "grads": {k: g.flatten().tolist() for k, g in grads.items()},
        "params_after": {k: p.detach().flatten().tolist() for k, p in params.items()},
    })

OUT.parent.mkdir(parents=True, exist_ok=True)
OUT.write_text(json.dumps({
    "source": "torch %s AdamW(lr=1e-2, betas=(0.9,0.999), eps=1e-8, wd=0), get_linear_schedule_with_warmup(warmup=%d, total=%d), clip_grad_norm_(1.0)" % (torch.__version__, warmup, steps),
    "base_lr": 1e-2,
    "warmup_steps": warmup,
    "total_steps": steps,
    "shapes": {k: list(s) for k, s in shapes.items()},
    "initial": {k: v.flatten().tolist() for k, v in initial.items()},
    "steps": records,
}, indent=1))
print(f"wrote {OUT}")
