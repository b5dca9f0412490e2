"""Print tokens as they are generated. Ctrl-C stops the generation cleanly."""
import os
import sys

import mmfp4

here = os.path.dirname(os.path.abspath(__file__))
model_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "../../models/tiny-glm4-moe-lite-mmfp4")
model = mmfp4.load(model_dir)

stream = model.stream("The Jargon File says", max_new_tokens=48, temperature=0.8, seed=7)
for token in stream:
    print(token.text, end="", flush=True)
print(f"\n[{len(stream.ids)} tokens, {stream.finish_reason}]")

with model.stream("import os\n", max_new_tokens=200) as stream:  # leaving the block early cancels it
    for token in stream:
        if "\n\n" in stream.text:
            break
