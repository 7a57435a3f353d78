#!/usr/bin/env python3
"""Pre-tokenizer cases from Hugging Face `tokenizers`: what Split (Oniguruma regexes of real files:
Llama 3, GPT-4o-style o200k, Qwen2; a `.` pattern; every behavior) and Metaspace (every
prepend_scheme, split on/off) make of hard strings. lora-mpt translates the regexes to JavaScript,
so these pin the translation to the engine the Rust crate uses.

Writes test/data/fixtures/llama-tok/split-cases.json. Run from the repository root:
  /opt/refpy/bin/python tools/reference/make_split_cases.py
"""
import json
from pathlib import Path

import tokenizers
from tokenizers import Regex, pre_tokenizers

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "test" / "data" / "fixtures" / "llama-tok" / "split-cases.json"

CONTRACTIONS = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"
PATTERNS = {
    "llama3": CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "o200k": r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+" + CONTRACTIONS + "?"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*" + CONTRACTIONS + "?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "qwen2": CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "dot": r"\.\.\.|\-+|[a-z]+|.",
}
TEXTS = [
    "DON'T I'M HE'S we'Ve they'RE it'LL I'd 'ſ 'K 'ﬆ", "x\r\ny\rz\u2028w\u2029v\x85u", "Ünïcödé ÀÉ ǅungla ǈ",
    "12345678 3.14159 -42 ١٢٣٤ 五六", "🤖 emoji 👍🏽 and e\u0301 combining", "tab\t\tx  \n  \n\n  y   ",
    "a...b--c/d//e\n/", "CamelCaseWord HTTPServer iPhone", "   leading and trailing   ", "",
    "def f(x):\n    return {'a': [1, 2]}\r\n", "\u00a0nbsp\u3000ideographic\u200bzwsp",
]
SPLITS = [(name, "isolated") for name in PATTERNS] + [
    ("s+", "removed"), ("s+", "merged_with_previous"), ("s+", "merged_with_next"), ("dash", "isolated"),
    ("dash", "merged_with_next"),
]
BEHAVIOR_JSON = {"isolated": "Isolated", "removed": "Removed", "merged_with_previous": "MergedWithPrevious",
                 "merged_with_next": "MergedWithNext"}


def main():
    cases = []
    for name, behavior in SPLITS:
        if name == "s+":
            pattern, pat_json = Regex(r"\s+"), {"Regex": r"\s+"}
        elif name == "dash":
            pattern, pat_json = "-", {"String": "-"}
        else:
            pattern, pat_json = Regex(PATTERNS[name]), {"Regex": PATTERNS[name]}
        pre = pre_tokenizers.Split(pattern, behavior=behavior, invert=False)
        spec = {"type": "Split", "pattern": pat_json, "behavior": BEHAVIOR_JSON[behavior], "invert": False}
        cases.append({"name": f"{name} {behavior}", "pre_tokenizer": spec,
                      "out": [[p for p, _ in pre.pre_tokenize_str(t)] for t in TEXTS]})
    for scheme in ("always", "first", "never"):
        for split in (True, False):
            pre = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=scheme, split=split)
            cases.append({"name": f"metaspace {scheme} split={split}", "pre_tokenizer": json.loads(pre.__getstate__()),
                          "out": [[p for p, _ in pre.pre_tokenize_str(t)] for t in TEXTS]})
    OUT.write_text(json.dumps({"tokenizers_version": tokenizers.__version__, "texts": TEXTS, "cases": cases},
                              ensure_ascii=True, separators=(",", ":")) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}: {len(cases)} pre-tokenizers x {len(TEXTS)} texts, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
