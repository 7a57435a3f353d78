#!/usr/bin/env python3
"""Writes the tiny parquet fixtures of test/data/dataset.test.ts with pyarrow (the reference writer).

  test/data/fixtures/alpaca-tiny.parquet  4 rows, snappy (pyarrow's default), non-ASCII, an empty input
  test/data/fixtures/alpaca-bad.parquet   3 rows: "output" is an int64 column, "input" has a null

Run from the repository root:  /opt/refpy/bin/python tools/reference/make_parquet_fixtures.py
"""
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

OUT = Path(__file__).resolve().parents[2] / "test" / "data" / "fixtures"

good = pa.table({
    "instruction": ["Give three tips for staying healthy.", "Translate to French.", "Sum the numbers.", "Écris un haïku."],
    "input": ["", "Good morning", "1, 2, 3", ""],
    "output": ["1. Eat well.\n2. Sleep.\n3. Move.", "Bonjour", "6", "Neige sur le toit 🌨"],
})
pq.write_table(good, OUT / "alpaca-tiny.parquet", compression="snappy")

bad = pa.table({
    "instruction": ["a", "b", "c"],
    "input": ["x", None, ""],
    "output": pa.array([1, 2, 3], type=pa.int64()),
})
pq.write_table(bad, OUT / "alpaca-bad.parquet", compression="snappy")
for f in ("alpaca-tiny.parquet", "alpaca-bad.parquet"):
    print(f, (OUT / f).stat().st_size, "bytes")
