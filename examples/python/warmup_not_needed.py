"""The seed guide's warm-up calls: no longer needed. Loading plans all memory and runs one warm-up step, so the
first call gives the same logits as any later one, at any length."""
import os
import sys

import numpy as np

import mmfp4

here = os.path.dirname(os.path.abspath(__file__))
model_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "../../models/tiny-glm4-moe-lite-mmfp4")
model = mmfp4.load(model_dir)
input_ids = model.tokenizer.encode("A man walks into a bar")

first = model(input_ids)  # no warm-up before it
for _ in range(3):        # the old warm-up calls (short inputs, as the guide had them) change nothing
    model(input_ids[:1])
    model(input_ids[:4])
assert np.array_equal(model(input_ids), first)

first_ids = model.generate(input_ids, max_new_tokens=16)
assert np.array_equal(model.generate(input_ids, max_new_tokens=16), first_ids)
print("first call == warmed-up call:", True)
