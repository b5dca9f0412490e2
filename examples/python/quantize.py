"""Quantize a Hugging Face safetensors folder (BF16/F16/F32) to MMFP4, then load it.

    python3 quantize.py SRC DST [HADAMARD_BLOCK]
"""
import sys

import mmfp4

if len(sys.argv) < 3:
    sys.exit(__doc__)
src, dst = sys.argv[1], sys.argv[2]
hadamard = int(sys.argv[3]) if len(sys.argv) > 3 else None  # e.g. 64, metal-marlin's default rotation
report = mmfp4.quantize(src, dst, group_size=128, hadamard=hadamard)
print(f"{report['quantized']} tensors quantized, {report['source_bytes'] / 1e6:.1f} MB -> "
      f"{report['output_bytes'] / 1e6:.1f} MB")
model = mmfp4.load(dst)
print(model.tokenizer.decode(model.generate("The quick brown fox", max_new_tokens=16)))
