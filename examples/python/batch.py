"""Several prompts of different lengths in one call: the engine batches them, and each row is exactly what the
prompt gives alone. No padding or attention mask is needed (a transformers-style padded batch works too)."""
import os
import sys

import numpy as np

import mmfp4

here = os.path.dirname(os.path.abspath(__file__))
model_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "../../models/tiny-glm4-moe-lite-mmfp4")
model = mmfp4.load(model_dir)
tok = model.tokenizer
prompts = [tok.encode(p) for p in ("The quick brown fox", "Debian", "def main():\n    ")]

out = model.generate(prompts, max_new_tokens=12, return_dict_in_generate=True)
for p, new, text in zip(prompts, out.new_ids, out.texts):
    assert np.array_equal(model.generate(p, max_new_tokens=12)[len(p):], new)
    print(repr(tok.decode(p)), "->", repr(text))

logits = model(prompts)  # [3, longest, vocab]; positions past a prompt's end hold 0
assert np.array_equal(logits[1, :len(prompts[1])], model(prompts[1])[0])

padded = model.generate(**tok(["The quick brown fox", "Debian"], return_tensors="np"), max_new_tokens=12)
print(padded.shape, "(left-padded rows, as transformers returns them)")
