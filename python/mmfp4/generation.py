"""Generation options -> the engine's Request, and the results: Stream (token by token) and GenerationOutput."""

import operator
import secrets
from dataclasses import dataclass
from typing import List, NamedTuple, Optional

import numpy as np

from . import _mmfp4


def sampling_params(defaults, *, do_sample=None, temperature=None, top_k=None, top_p=None, min_p=None,
                    repetition_penalty=None, presence_penalty=None, frequency_penalty=None, seed=None):
    """The model's defaults (generation_config.json: greedy unless it says do_sample) with the given overrides.

    temperature > 0 samples; do_sample=False forces greedy whatever the temperature; do_sample=True with no
    temperature samples at temperature 1. Ranges are checked by the engine (mmfp4.Error names the field).
    """
    p = _mmfp4._SamplingParams()
    for name in ("temperature", "top_k", "top_p", "min_p", "repetition_penalty", "presence_penalty",
                 "frequency_penalty"):
        setattr(p, name, getattr(defaults, name))
    for name, value in (("temperature", temperature), ("top_p", top_p), ("min_p", min_p),
                        ("repetition_penalty", repetition_penalty), ("presence_penalty", presence_penalty),
                        ("frequency_penalty", frequency_penalty)):
        if value is not None:
            setattr(p, name, float(value))
    if top_k is not None:
        p.top_k = _integer(top_k, "top_k", 0, 2**31 - 1)
    if do_sample is False:
        p.temperature = 0.0
    elif do_sample is True and p.temperature == 0.0:
        p.temperature = 1.0
    if seed is not None:
        p.seed = _integer(seed, "seed", 0, 2**64 - 1)
    return p


def _integer(value, name, lo, hi):
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {v}")
    return v


def make_request(max_new_tokens, sampling, stop=None, eos_token_id=None, ignore_eos=False):
    """An engine Request. eos_token_id replaces the model's EOS ids (transformers semantics) by the given ones."""
    r = _mmfp4._Request()
    r.max_new_tokens = _integer(max_new_tokens, "max_new_tokens", -2**62, 2**62)  # negative: the engine says
    r.sampling = sampling
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else list(stop)
        if not all(isinstance(s, str) and s for s in stops):
            raise TypeError(f"stop must be a non-empty string or a list of them, got {stop!r}")
        r.stop = stops
    if eos_token_id is not None:
        ids = [eos_token_id] if not isinstance(eos_token_id, (list, tuple, np.ndarray)) else list(eos_token_id)
        r.stop_ids = [_integer(i, "eos_token_id", -2**31, 2**31 - 1) for i in ids]
        r.ignore_eos = True
    else:
        r.ignore_eos = bool(ignore_eos)
    return r


def random_seed() -> int:
    """A fresh seed for a request that asked for none: sampling without a seed differs from call to call."""
    return secrets.randbits(64)


class StreamToken(NamedTuple):
    """One step of a stream: a generated token id and the text it completed (may be "" for a token that ends
    inside a character or might start a stop string). The very last item may have id None: text held back until
    the end (a partial stop string that did not complete)."""
    id: Optional[int]
    text: str


class Stream:
    """Tokens of one generation as the engine produces them. Iterate it; `ids`, `text` and `finish_reason`
    ("stop", "length", "cancelled") fill in as it goes. Leaving a `with` block or calling cancel() stops the
    request early. While waiting for a token the GIL is released and Ctrl-C cancels the request."""

    def __init__(self, generation, prompt_ids):
        self._gen = generation
        self.prompt_ids = prompt_ids
        self.ids: List[int] = []
        self.text = ""
        self.finish_reason: Optional[str] = None

    def __iter__(self):
        return self

    def __next__(self) -> StreamToken:
        if self.finish_reason is not None:
            raise StopIteration
        ev = self._gen.next()
        if ev.finished:
            self.finish_reason = ev.reason
            if ev.reason == "error":
                raise _mmfp4.Error(ev.error)
            self.text += ev.text
            if ev.text:
                return StreamToken(None, ev.text)
            raise StopIteration
        self.ids.append(ev.token)
        self.text += ev.text
        return StreamToken(ev.token, ev.text)

    def cancel(self) -> None:
        """Stops the request; iteration ends after the tokens already produced (finish_reason "cancelled")."""
        if self.finish_reason is None:
            self._gen.cancel()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cancel()
        return False


@dataclass
class GenerationOutput:
    """generate(..., return_dict_in_generate=True): `sequences` is what generate() returns; the lists hold, per
    input row, the new ids alone, their text (the model's tokenizer, special tokens skipped) and why it stopped."""
    sequences: np.ndarray
    new_ids: List[np.ndarray]
    texts: List[str]
    finish_reasons: List[str]
