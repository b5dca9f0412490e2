"""What was loaded and how memory was planned. model.config is read-only: everything is fixed at load."""
import os
import sys
import warnings

import mmfp4

here = os.path.dirname(os.path.abspath(__file__))
model_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "../../models/tiny-glm4-moe-lite-mmfp4")
model = mmfp4.load(model_dir, max_context=1024, max_batch=4)  # memory is sized from these at load
print(model.config.summary)
print(model.config.memory_plan)
print("layers", model.config.num_hidden_layers, "vocab", model.config.vocab_size, "context", model.max_context)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    model.config.enable_memory_pooling = True  # the seed's switch: accepted, does nothing (always pooled)
