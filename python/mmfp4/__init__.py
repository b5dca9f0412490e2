"""mmfp4: MMFP4 4-bit LLM inference (C++ engine, CPU and CUDA) from Python.

    import mmfp4
    model = mmfp4.load("models/tiny-glm4-moe-lite-mmfp4")
    ids = model.tokenizer.encode("The quick brown fox")
    logits = model(ids)                                   # float32 [1, len(ids), vocab]
    out = model.generate(ids, max_new_tokens=32)          # prompt + new ids
    print(model.tokenizer.decode(out[len(ids):]))
    for tok in model.stream(ids, max_new_tokens=32):      # token by token
        print(tok.text, end="", flush=True)

See docs/python.md.
"""

from ._mmfp4 import Error, QueueFull, _version as __version__
from .config import Config
from .generation import GenerationOutput, Stream, StreamToken
from .model import Model, load
from .settings import check_finite, set_verbose
from .tokenizer import Encoding, Tokenizer
from . import _mmfp4


def quantize(src, dst, group_size: int = 128, hadamard=None, force: bool = False, progress=None) -> dict:
    """Quantizes a Hugging Face safetensors folder (BF16/F16/F32) to an MMFP4 folder, like `mmfp4 quantize`.

    group_size: inputs per F16 scale (a multiple of 8). hadamard: None/0 for no rotation, or a block size (a
    power of two; metal-marlin's default is 64) to rotate weights with a block Hadamard transform first.
    force: write into a non-empty dst. progress(done, total, tensor_name) is called after each tensor. Returns
    counts and sizes; raises mmfp4.Error naming the file or tensor on any problem. Ctrl-C stops it.
    """
    import os
    return _mmfp4._quantize(os.fspath(src), os.fspath(dst), int(group_size), int(hadamard or 0), bool(force),
                            progress)


__all__ = ["load", "Model", "Tokenizer", "Config", "Stream", "StreamToken", "GenerationOutput", "Encoding",
           "Error", "QueueFull", "set_verbose", "check_finite", "quantize", "__version__"]
