"""Load a model, look at its logits, generate text."""
import os
import sys

import numpy as np

import mmfp4

here = os.path.dirname(os.path.abspath(__file__))
model_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "../../models/tiny-glm4-moe-lite-mmfp4")
model = mmfp4.load(model_dir)  # device="auto": CUDA when a GPU is present, else the CPU
print(model)

input_ids = model.tokenizer.encode("The quick brown fox")
logits = model(input_ids)  # float32 NumPy array [batch, seq, vocab]
print("logits", logits.shape, "next token:", model.tokenizer.decode([int(np.argmax(logits[0, -1]))]))

output = model.generate(input_ids, max_new_tokens=32)  # prompt + new ids, like transformers
print(model.tokenizer.decode(output[len(input_ids):]))
