#!/usr/bin/env python3
"""Llama-family tokenizer fixtures, trained with Hugging Face `tokenizers` on the Alpaca text.

Two small tokenizers with the pipeline types and flags of the real tokenizer.json files:

  llama2  SentencePiece-style BPE: byte_fallback, unk <unk> (fused), normalizer Sequence[Prepend("▁"),
          Replace(" ", "▁")], no pre-tokenizer, decoder Sequence[Replace, ByteFallback, Fuse, Strip],
          TemplateProcessing "<s> $A"; <unk> <s> </s> = 0 1 2, <0x00>..<0xFF> = 3..258 (Llama 2's layout).
  llama3  byte-level BPE (ignore_merges): pre-tokenizer Sequence[Split(Llama 3 regex, Isolated),
          ByteLevel(add_prefix_space=false, use_regex=false)], decoder ByteLevel, post-processor
          Sequence[ByteLevel, TemplateProcessing "<|begin_of_text|> $A"], 16 special tokens after the vocab.

and variants of them that differ only in the pipeline (what TinyLlama / Mistral conversions and older
files use), written as JSON overrides of those fields so the test applies the same edit:

  llama2-metaspace        no normalizer; Metaspace(prepend_scheme "first", split false)
  llama2-metaspace-split  Metaspace(prepend_scheme "always", split true), decoder Metaspace
  llama2-normalized-added <unk> <s> </s> matched after normalization (normalized: true)

Writes test/data/fixtures/llama-tok/:
  llama2/ llama3/          tokenizer.json + tokenizer_config.json (loadable by transformers)
  alpaca-ids.json.gz       per variant, for every Alpaca record (prompt + response, alpaca template,
                           add_special_tokens=True): the first 2 bytes of the sha256 of its ids (the
                           size budget; one wrong record slips by with odds 1/65536, a wrong pipeline
                           never), full ids of ~120 hard records, and for a variant the records whose
                           ids differ from its base tokenizer's (with their ids)
  cases.json               hand-picked encode (with/without special tokens) and decode cases per
                           variant, and what transformers' AutoTokenizer adds (BOS yes, EOS no)

Run from the repository root:  /opt/refpy/bin/python tools/reference/make_llama_tokenizer_fixtures.py
The BPE trainer is multi-threaded and breaks ties differently from run to run, so a rerun writes a
slightly different vocabulary; the expected ids always come from the same run as the files.
"""

import base64
import copy
import gzip
import hashlib
import json
import random
import re
import struct
import sys
import tempfile
from pathlib import Path

import tokenizers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers.trainers import BpeTrainer

sys.path.insert(0, str(Path(__file__).parent))
from tokenizer_parity import fmt, sha256  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "test" / "data" / "fixtures" / "llama-tok"
DATA = ROOT.parent / "shared" / "data" / "alpaca_data.json"
FIELDS = ("instruction", "input", "output")

# Llama 3's split pattern, as in Meta's tokenizer.json (and tiktoken's cl100k_base).
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>"] + [f"<|reserved_special_token_{i}|>" for i in range(4)] + [
    "<|start_header_id|>", "<|end_header_id|>", "<|reserved_special_token_4|>", "<|eot_id|>"
] + [f"<|reserved_special_token_{i}|>" for i in range(5, 11)]
VOCAB = 4000


def train_llama2(texts):
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    # Training splits at spaces as SentencePiece does (split_by_whitespace); the saved file then has
    # Llama 2's own pipeline, where a whole piece of text is one BPE word.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    # limit_alphabet leaves rare characters (CJK, emoji, symbols) to byte fallback, as in Llama 2.
    tok.train_from_iterator(texts, BpeTrainer(vocab_size=VOCAB - 259, limit_alphabet=160, show_progress=False))
    trained = json.loads(tok.to_str())
    specials = ["<unk>", "<s>", "</s>"]
    vocab = {s: i for i, s in enumerate(specials)}
    vocab.update({f"<0x{b:02X}>": 3 + b for b in range(256)})
    for t, i in sorted(trained["model"]["vocab"].items(), key=lambda kv: kv[1]):
        if t not in vocab:
            vocab[t] = len(vocab)
    j = trained
    j["model"].update(vocab=vocab, unk_token="<unk>", byte_fallback=True, fuse_unk=True)
    j["added_tokens"] = [
        {"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
         "special": True} for i, s in enumerate(specials)
    ]
    j["normalizer"] = json.loads(normalizers.Sequence(
        [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]).__getstate__())
    j["pre_tokenizer"] = None
    j["decoder"] = json.loads(decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    ).__getstate__())
    j["post_processor"] = json.loads(processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]).__getstate__())
    return Tokenizer.from_str(json.dumps(j))


def train_llama3(texts):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.train_from_iterator(texts, BpeTrainer(vocab_size=VOCAB, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                              show_progress=False))
    j = json.loads(tok.to_str())
    j["model"]["ignore_merges"] = True
    base = len(j["model"]["vocab"])
    j["added_tokens"] = [
        {"id": base + i, "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
         "special": True} for i, s in enumerate(LLAMA3_SPECIALS)
    ]
    j["decoder"] = json.loads(decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True).__getstate__())
    j["post_processor"] = json.loads(processors.Sequence([
        processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                      special_tokens=[("<|begin_of_text|>", base)]),
    ]).__getstate__())
    return Tokenizer.from_str(json.dumps(j))


def overrides(llama2_json):
    meta_first = json.loads(pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False).__getstate__())
    meta_split = json.loads(pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True).__getstate__())
    added = copy.deepcopy(llama2_json["added_tokens"])
    for t in added:
        t["normalized"] = True
    return {
        "llama2-metaspace": {"normalizer": None, "pre_tokenizer": meta_first},
        "llama2-metaspace-split": {
            "normalizer": None, "pre_tokenizer": meta_split,
            "decoder": json.loads(decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True).__getstate__()),
        },
        "llama2-normalized-added": {"added_tokens": added},
    }


def ids_hash(ids):
    return hashlib.sha256(struct.pack(f"<{len(ids)}i", *ids)).digest()[:2]


def hard_records(records, n=120):
    rng = random.Random(26)
    text = ["\n".join(r[k] for k in FIELDS) for r in records]
    picks = [
        [i for i, t in enumerate(text) if " " * 4 in t],
        [i for i, t in enumerate(text) if re.search(r"[\x00-\x09\x0b-\x1f\x7f]", t)],
        [i for i, t in enumerate(text) if any(ord(c) > 0xFFFF for c in t)],
        [i for i, t in enumerate(text) if re.search(r"'(S|T|RE|VE|M|LL|D)\b", t)],
        [i for i, t in enumerate(text) if any(ord(c) > 0x2FF for c in t)],
        [i for i, t in enumerate(text) if re.search(r"\d{4,}", t)],
        sorted(range(len(text)), key=lambda i: -len(text[i]))[:10],
    ]
    chosen = set()
    for idx in picks:
        chosen.update(rng.sample(idx, min(len(idx), 18)))
    return sorted(chosen)[:n]


CASES = [
    "", " ", "  ", "Hello", " Hello", "Hello world", "Hello  world", "  two leading", "trailing  ",
    "\n\nline\n", "tab\tsep", "a\r\nb", "caf\u00e9 cafe\u0301", "日本語のテキスト", "مرحبا بالعالم", "Ω≈ç√∫",
    "\U0001f44d\U0001f3fd family \U0001f468\u200d\U0001f469\u200d\U0001f467", "I'M HE'S they're we'll it'd",
    "'ſ 'K 'S 'Ll", "1234567890 3.14159 -42", "<s>Hello</s>", "Hello <s> world", "<unk>x</s>",
    "<|begin_of_text|>Hi<|eot_id|>\n<|start_header_id|>user<|end_header_id|>", "▁ already ▁▁ meta",
    "def f(x):\n    if x:\n        return {'a': [1, 2]}\n\treturn None\n", "\u0000\u0001 nul", "x\u00a0\u00a0y \u2028 \x85",
    "a" * 500, "=-" * 200,
]


def case_block(tok, rng):
    enc = [{"text": s, "ids": tok.encode(s).ids, "plain": tok.encode(s, add_special_tokens=False).ids} for s in CASES]
    size = tok.get_vocab_size(with_added_tokens=True)
    dec = [c["ids"] for c in enc[:24]]
    dec += [[rng.randrange(0, size) for _ in range(rng.randrange(1, 20))] for _ in range(40)]
    byte_ids = [tok.token_to_id(f"<0x{b:02X}>") for b in (0xE6, 0x97, 0xA5, 0x41, 0xFF)]
    if None not in byte_ids:  # byte fallback: a whole character, a broken one, and bytes around words
        dec += [byte_ids[:3], byte_ids[:2], byte_ids[1:4], [byte_ids[4], 1], byte_ids[:2] + byte_ids]
    return {
        "encode": enc,
        "decode": [{"ids": ids, "skip_special": skip, "text": tok.decode(ids, skip_special_tokens=skip)}
                   for ids in dec for skip in (True, False)],
    }


def transformers_ids(folder, texts):
    from transformers import AutoTokenizer
    t = AutoTokenizer.from_pretrained(str(folder))
    return {"class": type(t).__name__, "bos": t.bos_token_id, "eos": t.eos_token_id,
            "cases": [{"text": s, "ids": t(s)["input_ids"]} for s in texts]}


def main():
    records = json.loads(DATA.read_text())
    template = json.loads((ROOT / "src/data/templates/alpaca.json").read_text())
    full = [fmt(template, r, True) for r in records]
    OUT.mkdir(parents=True, exist_ok=True)
    built = {"llama2": train_llama2(full), "llama3": train_llama3(full)}
    configs = {
        "llama2": {"tokenizer_class": "LlamaTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
                   "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False, "legacy": True,
                   "model_max_length": 4096, "clean_up_tokenization_spaces": False},
        "llama3": {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|begin_of_text|>",
                   "eos_token": "<|end_of_text|>", "model_max_length": 8192, "clean_up_tokenization_spaces": True},
    }
    for name, tok in built.items():
        (OUT / name).mkdir(exist_ok=True)
        tok.save(str(OUT / name / "tokenizer.json"), pretty=False)
        (OUT / name / "tokenizer_config.json").write_text(json.dumps(configs[name], indent=2) + "\n")
    base_json = json.loads((OUT / "llama2" / "tokenizer.json").read_text())
    variants = {}
    for name, ov in overrides(base_json).items():
        j = dict(base_json, **ov)
        variants[name] = ("llama2", ov, Tokenizer.from_str(json.dumps(j)))

    hard = hard_records(records)
    expected = {"meta": {"template": "alpaca", "text": "full", "add_special_tokens": True,
                         "tokenizers_version": tokenizers.__version__, "data_sha256": sha256(DATA),
                         "hash": "first 2 bytes of sha256 of the ids as little-endian int32"}, "variants": {}}
    base_ids = {}
    for name, tok in built.items():
        ids = [e.ids for e in tok.encode_batch(full)]
        base_ids[name] = ids
        expected["variants"][name] = {
            "tokenizer_sha256": sha256(OUT / name / "tokenizer.json"),
            "hashes": base64.b64encode(b"".join(ids_hash(s) for s in ids)).decode(),
            "sample": {str(i): ids[i] for i in hard},
        }
        print(f"{name}: vocab {tok.get_vocab_size()}, {sum(map(len, ids))} tokens over {len(ids)} records")
    for name, (base, ov, tok) in variants.items():
        ids = [e.ids for e in tok.encode_batch(full)]
        differ = [i for i in range(len(ids)) if ids[i] != base_ids[base][i]]
        expected["variants"][name] = {"base": base, "override": ov,
                                      "differ": {str(i): ids[i] for i in differ},
                                      "sample": {str(i): ids[i] for i in hard[:40]}}
        print(f"{name}: {len(differ)} records differ from {base}")
    with gzip.GzipFile(OUT / "alpaca-ids.json.gz", "wb", compresslevel=9, mtime=0) as f:
        f.write(json.dumps(expected, separators=(",", ":")).encode())

    rng = random.Random(7)
    cases = {"tokenizers_version": tokenizers.__version__, "variants": {}}
    for name, tok in built.items():
        cases["variants"][name] = case_block(tok, rng)
    for name, (_, ov, tok) in variants.items():
        cases["variants"][name] = dict(case_block(tok, rng), override=ov)
    import transformers
    cases["transformers_version"] = transformers.__version__
    cases["transformers"] = {name: transformers_ids(OUT / name, ["Hello world", "", "<s>x</s>", "a\nb"])
                             for name in built}
    (OUT / "cases.json").write_text(json.dumps(cases, ensure_ascii=True, separators=(",", ":")) + "\n")
    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            print(f"wrote {p.relative_to(ROOT)}: {p.stat().st_size} bytes")


if __name__ == "__main__":
    main()
