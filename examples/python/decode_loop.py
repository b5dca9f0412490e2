"""The seed guide's single-token decode loop: still works, no longer needed. generate() gives the same ids in
one call (it keeps a KV cache, so it is also much faster)."""
import os
import sys

import numpy as np

import mmfp4

here = os.path.dirname(os.path.abspath(__file__))
model_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "../../models/tiny-glm4-moe-lite-mmfp4")
model = mmfp4.load(model_dir)
input_ids = model.tokenizer.encode("def fibonacci(n):\n    ")

# The old way: recompute the logits of the whole sequence, take the most likely next token, repeat.
ids = list(input_ids)
for _ in range(16):
    logits = model(ids)
    ids.append(int(np.argmax(logits[0, -1])))

# Or one token per generate() call.
step = list(input_ids)
for _ in range(16):
    step = model.generate(step, max_new_tokens=1, ignore_eos=True).tolist()

output = model.generate(input_ids, max_new_tokens=16, ignore_eos=True)  # the new way
assert ids == step == output.tolist()
print(model.tokenizer.decode(output[len(input_ids):]))
