#!/usr/bin/env python3
"""Tokenizer parity: Hugging Face `tokenizers` vs lora-mpt's TypeScript tokenizer.

Formats every Alpaca record as alpaca-lora's Prompter does (full text with the response, and the
user prompt alone), tokenizes with HF `tokenizers` and with `tools/reference/token-ids.ts`, and
compares every id. With --write-fixture it also writes the committed CI fixtures:

  test/data/fixtures/neox-alpaca-ids.bin.gz  expected ids of >= 2,000 chosen records (hard cases first)
  test/data/fixtures/neox-cases.json         hand-picked encode cases and decode cases (both skip modes)

Run from the repository root:  /opt/refpy/bin/python tools/reference/tokenizer_parity.py [--write-fixture]
(after --write-fixture: npx biome format --write test/data/fixtures/neox-cases.json, for the lint)
Exits 1 on any mismatch.
"""

import argparse
import gzip
import hashlib
import json
import random
import re
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tokenizers
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "test" / "data" / "fixtures"
FIELDS = ("instruction", "input", "output")


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def fmt(template, r, with_output):
    # alpaca-lora utils/prompter.py generate_prompt: the input template iff input is truthy;
    # the label is appended iff truthy.
    if r["input"]:
        res = template["prompt_input"].format(instruction=r["instruction"], input=r["input"])
    else:
        res = template["prompt_no_input"].format(instruction=r["instruction"])
    if with_output and r["output"]:
        res = f"{res}{r['output']}"
    return res


def read_ids(path):
    buf = Path(path).read_bytes()
    if buf[:8] != b"LMTKIDS1":
        raise SystemExit(f"{path}: not an ids file")
    (mlen,) = struct.unpack_from("<I", buf, 8)
    o = 12 + mlen
    (count,) = struct.unpack_from("<I", buf, o)
    o += 4
    out = {}
    for _ in range(count):
        index, n = struct.unpack_from("<II", buf, o)
        o += 8
        out[index] = list(struct.unpack_from(f"<{n}H", buf, o))
        o += 2 * n
    return out


def write_ids(path, meta, items):
    parts = [b"LMTKIDS1"]
    m = json.dumps(meta, sort_keys=True).encode()
    parts += [struct.pack("<I", len(m)), m, struct.pack("<I", len(items))]
    for index, ids in items:
        assert max(ids, default=0) < 65536
        parts += [struct.pack("<II", index, len(ids)), struct.pack(f"<{len(ids)}H", *ids)]
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as f:
        f.write(b"".join(parts))


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def compare(name, ref, js, tok, texts):
    bad = [i for i in range(len(ref)) if ref[i] != js.get(i)]
    print(f"{name}: {len(ref) - len(bad)}/{len(ref)} records identical")
    for i in bad[:10]:
        j = js.get(i, [])
        d = first_diff(ref[i], j)
        print(f"  record {i}: first difference at token {d}: HF {ref[i][d:d+6]} "
              f"{[tok.id_to_token(x) for x in ref[i][d:d+6]]}  JS {j[d:d+6]}")
        print(f"    text near there: {tok.decode(ref[i][max(0, d-3):d+6])!r}")
    return not bad


def choose(records, ref):
    """Indices for the CI fixture: every hard case of a few kinds, then a seeded sample."""
    rng = random.Random(42)
    text = ["\n".join(r[k] for k in FIELDS) for r in records]
    kinds = {
        "space run >= 8 (code, tables)": [i for i, t in enumerate(text) if " " * 8 in t],
        "control chars other than newline": [i for i, t in enumerate(text) if re.search(r"[\x00-\x09\x0b-\x1f\x7f]", t)],
        "outside the BMP (emoji)": [i for i, t in enumerate(text) if any(ord(c) > 0xFFFF for c in t)],
        "apostrophe + upper case": [i for i, t in enumerate(text) if re.search(r"'(S|T|RE|VE|M|LL|D)\b", t)],
        "non-ASCII": [i for i, t in enumerate(text) if any(ord(c) > 127 for c in t)],
        "space run 2..7": [i for i, t in enumerate(text) if "  " in t and " " * 8 not in t],
        "many digits": [i for i, t in enumerate(text) if len(re.findall(r"\d", t)) >= 20],
        "longest 60": sorted(range(len(ref)), key=lambda i: -len(ref[i]))[:60],
    }
    caps = {"non-ASCII": 700, "space run 2..7": 400, "many digits": 150, "apostrophe + upper case": 80}
    chosen = set()
    for kind, idx in kinds.items():
        pick = idx if len(idx) <= caps.get(kind, 10**9) else rng.sample(idx, caps[kind])
        chosen.update(pick)
        print(f"  fixture: {len(pick):5d} of {len(idx):5d} records with {kind}")
    rest = [i for i in range(len(records)) if i not in chosen]
    chosen.update(rng.sample(rest, max(0, 2400 - len(chosen))))
    return sorted(chosen)


def cases(tok):
    enc = [
        "Hello  world", "a   b", "x" + " " * 30 + "y", " " * 24, " " * 25, " " * 50 + "z", "\t\t  x",
        "\n\n\n", "  leading", "trailing  ", " ", "", "x\u00a0\u00a0y", "line\u2028sep",
        " \x85x \ufeffy", "<|endoftext|>hi<|padding|> <|endoftext|>", "cafe\u0301 caf\u00e9",
        "\u212b \u1e9b\u0323 \ufb01", "I'M HE'S they're we'll it'd", "1234567890 3.14159 -42",
        "\U0001f44d\U0001f3fd family \U0001f468\u200d\U0001f469\u200d\U0001f467", "日本語のテキスト",
        "مرحبا بالعالم", "def f(x):\n    if x:\n        return {'a': [1, 2]}\n\treturn None\n",
        "  \n  \n", "a\r\nb", "$$$ ### !!! ???", "\u0000\u0001 nul",
    ]
    # Long unbroken pre-tokens: the merge order must match HF's heap, and stay fast.
    rng = random.Random(3)
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    enc += ["".join(rng.choice(letters) for _ in range(4000)), "a" * 3000, "=-" * 1500, "\u00e9" * 1000,
            "".join(rng.choice(letters + "0123456789+/") for _ in range(3000))]
    ids_of = lambda s: tok.token_to_id(s)
    dec_ids = [
        [0, 12092, 50276, 1533], [12092, 50276, 0], [ids_of("Ã")], [ids_of("Ã"), ids_of("©")],
        [ids_of("ï»¿"), 12092], [50300, 12092, 99999], [1, 50254, 187, 0], [],
    ]
    rng = random.Random(7)
    dec_ids += [[rng.randrange(0, 50277) for _ in range(rng.randrange(1, 24))] for _ in range(120)]
    return {
        "tokenizers_version": tokenizers.__version__,
        "encode": [{"text": s, "ids": tok.encode(s).ids} for s in enc],
        "decode": [
            {"ids": ids, "skip_special": skip, "text": tok.decode(ids, skip_special_tokens=skip)}
            for ids in dec_ids for skip in (True, False)
        ],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", default=str(ROOT.parent / "shared/data/gpt-neox-20b/tokenizer.json"))
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/alpaca_data.json"))
    ap.add_argument("--template", default="alpaca")
    ap.add_argument("--write-fixture", action="store_true")
    args = ap.parse_args()

    tok = Tokenizer.from_file(args.tokenizer)
    records = json.loads(Path(args.data).read_text())
    template = json.loads((ROOT / "src/data/templates" / f"{args.template}.json").read_text())
    full = [fmt(template, r, True) for r in records]
    prompt = [fmt(template, r, False) for r in records]
    t0 = time.perf_counter()
    ref_full = [e.ids for e in tok.encode_batch(full)]
    ref_prompt = [e.ids for e in tok.encode_batch(prompt)]
    print(f"HF tokenizers {tokenizers.__version__}: {len(records)} records tokenized in {time.perf_counter() - t0:.1f} s")

    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["node", "--import", "tsx", "tools/reference/token-ids.ts", "--tokenizer", args.tokenizer,
               "--data", args.data, "--template", args.template, "--out", f"{tmp}/js"]
        subprocess.run(cmd, cwd=ROOT, check=True)
        ok = compare("full prompt+response", ref_full, read_ids(f"{tmp}/js.full.bin"), tok, full)
        ok = compare("user prompt only", ref_prompt, read_ids(f"{tmp}/js.prompt.bin"), tok, prompt) and ok

    if args.write_fixture:
        FIXTURES.mkdir(parents=True, exist_ok=True)
        idx = choose(records, ref_full)
        meta = {"template": args.template, "text": "full", "tokenizers_version": tokenizers.__version__,
                "tokenizer_sha256": sha256(args.tokenizer), "data_sha256": sha256(args.data)}
        path = FIXTURES / "neox-alpaca-ids.bin.gz"
        write_ids(path, meta, [(i, ref_full[i]) for i in idx])
        tokens = sum(len(ref_full[i]) for i in idx)
        print(f"wrote {path.relative_to(ROOT)}: {len(idx)} records, {tokens} tokens, {path.stat().st_size} bytes")
        path = FIXTURES / "neox-cases.json"
        path.write_text(json.dumps(cases(tok), ensure_ascii=True, indent=1) + "\n")
        print(f"wrote {path.relative_to(ROOT)}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
