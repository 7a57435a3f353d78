"""Small torch.save files for the .bin reader's edge cases, written by real torch (not hand-made bytes).
Writes test/fixtures/torch-save/:
  state-dict-metadata.bin  torch.save(module.state_dict()): an OrderedDict carrying `_metadata` (BUILD)
  fp16-shared.bin          f16 tensors; two entries are views of one storage (a slice and a transpose)
  legacy-format.bin        _use_new_zipfile_serialization=False (pre-1.6 format, not a zip)
  expected.json            the values torch holds for each tensor, row-major, as Python floats
Run: /opt/refpy/bin/python tools/reference/make_pickle_fixtures.py
"""

import json
import os

import torch

OUT = "test/fixtures/torch-save"


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(7)
    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
    sd = module.state_dict()
    assert hasattr(sd, "_metadata")
    torch.save(sd, os.path.join(OUT, "state-dict-metadata.bin"))

    base = (torch.arange(12, dtype=torch.float32) / 7 - 0.5).to(torch.float16).reshape(3, 4)
    shared = {"base": base, "row1": base[1], "transposed": base.t()}
    torch.save(shared, os.path.join(OUT, "fp16-shared.bin"))
    torch.save({"w": base}, os.path.join(OUT, "legacy-format.bin"), _use_new_zipfile_serialization=False)

    expected = {
        "state-dict-metadata.bin": {k: v.float().flatten().tolist() for k, v in sd.items()},
        "fp16-shared.bin": {k: v.float().contiguous().flatten().tolist() for k, v in shared.items()},
        "shapes": {k: list(v.shape) for k, v in {**sd, **shared}.items()},
    }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
