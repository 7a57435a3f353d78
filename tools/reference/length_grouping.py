#!/usr/bin/env python3
"""Fixture for --group_by_length: HF transformers' get_length_grouped_indices (what
LengthGroupedSampler uses) on given lengths, together with the torch.randperm it drew, so the test
can feed the same permutation to lora-mpt's groupByLength and compare the order.

Run from the repository root:  /opt/refpy/bin/python tools/reference/length_grouping.py
Writes test/data/fixtures/length-grouped.json (then: npx biome format --write on it, for the lint).
"""
import json
import random
from pathlib import Path

import torch
import transformers
from transformers.trainer_pt_utils import get_length_grouped_indices

OUT = Path(__file__).resolve().parents[2] / "test" / "data" / "fixtures" / "length-grouped.json"
cases = []
rng = random.Random(5)
for n, micro in [(1000, 4), (100, 4), (10, 4), (333, 8)]:
    lengths = [rng.randint(1, 40) for _ in range(n)]  # narrow range: many ties, to test stability
    g = torch.Generator().manual_seed(n)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(n)).tolist()
    order = get_length_grouped_indices(lengths, micro, generator=g)
    cases.append({"micro_batch_size": micro, "lengths": lengths, "perm": perm, "order": order})
OUT.write_text(json.dumps({"transformers_version": transformers.__version__, "cases": cases}) + "\n")
print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
