"""Python peer of bench/tokenize.ts: Hugging Face `tokenizers` on every Alpaca record, one thread.

Reads a JSON list of texts on stdin (already formatted by the bench, so both sides tokenize the
same strings), times Tokenizer.encode in a loop and encode_batch, and prints one JSON line with
the timings, token count and a sha256 of all ids (to check the JS ids are identical).
Run with RAYON_NUM_THREADS=1 so encode_batch stays on one thread.
"""
import hashlib
import json
import struct
import sys
import time

import tokenizers
from tokenizers import Tokenizer

tok = Tokenizer.from_file(sys.argv[1])
texts = json.load(sys.stdin)
t0 = time.perf_counter()
ids = [tok.encode(t).ids for t in texts]
loop_s = time.perf_counter() - t0
tok = Tokenizer.from_file(sys.argv[1])  # fresh cache for the batch run
t0 = time.perf_counter()
tok.encode_batch(texts)
batch_s = time.perf_counter() - t0
h = hashlib.sha256()
for s in ids:
    h.update(struct.pack(f"<I{len(s)}i", len(s), *s))
print(json.dumps({"version": tokenizers.__version__, "loop_s": loop_s, "batch_s": batch_s,
                  "tokens": sum(map(len, ids)), "sha256": h.hexdigest()}))
