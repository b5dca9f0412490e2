"""The seed guide's use_cache=False workaround: accepted, no longer needed. It recomputes the whole sequence for
every token (as transformers does without a cache) and gives the same ids as the cached path, sampled or not."""
import os
import sys

import numpy as np

import mmfp4

here = os.path.dirname(os.path.abspath(__file__))
model_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "../../models/tiny-glm4-moe-lite-mmfp4")
model = mmfp4.load(model_dir)
input_ids = model.tokenizer.encode("Debian is a free operating system")

for sampling in ({}, {"temperature": 0.7, "top_p": 0.9, "seed": 42}):
    cached = model.generate(input_ids, use_cache=True, max_new_tokens=24, **sampling)
    recomputed = model.generate(input_ids, use_cache=False, max_new_tokens=24, **sampling)
    assert np.array_equal(cached, recomputed)
    print(sampling or "greedy", "->", repr(model.tokenizer.decode(cached[len(input_ids):])))
