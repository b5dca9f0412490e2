"""A chat turn with the model's chat template."""
import os
import sys

import mmfp4

here = os.path.dirname(os.path.abspath(__file__))
model_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "../../models/tiny-glm4-moe-lite-mmfp4")
model = mmfp4.load(model_dir)

messages = [{"role": "user", "content": "What is a hacker?"}]
input_ids = model.tokenizer.apply_chat_template(messages, add_generation_prompt=True)  # ids, like transformers
output = model.generate(input_ids, max_new_tokens=40, stop=["<|im_end|>"])
print(model.tokenizer.decode(output[len(input_ids):], skip_special_tokens=True))
