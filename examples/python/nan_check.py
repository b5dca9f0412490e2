"""The seed guide's NaN check, and the engine's own tracing that names the first op to produce a NaN/Inf."""
import os
import sys

import numpy as np

import mmfp4

here = os.path.dirname(os.path.abspath(__file__))
model_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "../../models/tiny-glm4-moe-lite-mmfp4")
mmfp4.check_finite(True)  # MMFP4_CHECK=1: every op's output is checked; a NaN/Inf raises mmfp4.Error naming it
model = mmfp4.load(model_dir)

output = model(model.tokenizer.encode("Debian is a free operating system"))
print("NaN in logits:", np.isnan(output).any())  # was torch.isnan(output).any()
assert np.isfinite(output).all()

mmfp4.check_finite(False)  # it costs a host copy of every activation: for debugging only

mmfp4.set_verbose(True)  # the engine's debug log; models loaded from now on also log every op, shape and time
mmfp4.load(model_dir)([1, 2, 3])
mmfp4.set_verbose(False)
