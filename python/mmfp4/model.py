"""mmfp4.load() and Model: logits with model(input_ids), text with model.generate() / model.stream().

Everything is planned and warmed up at load, so the first call is as correct and as fast as the next: no
warm-up calls, no single-token loops, no use_cache=False are needed (they still work and give the same results).
"""

import os
from typing import Optional

import numpy as np

from . import _mmfp4, settings
from .config import Config
from .generation import GenerationOutput, Stream, make_request, random_seed, sampling_params
from .inputs import Batch, place_logits, sequences, to_batch
from .tokenizer import Tokenizer


def load(path, device: str = "auto", *, max_batch: Optional[int] = None, max_context: Optional[int] = None,
         threads: Optional[int] = None, max_batch_tokens: Optional[int] = None, kv_blocks: Optional[int] = None,
         max_queue: Optional[int] = None, prefix_caching: Optional[bool] = None, check: Optional[bool] = None,
         verbose: Optional[bool] = None) -> "Model":
    """Loads a model folder (Hugging Face layout; MMFP4 or BF16/F16/F32 weights).

    device: "cpu", "cuda" or "auto" (CUDA when a GPU is present). max_batch: sequences generated at once (more
    are queued); max_context: tokens per sequence (default min(model maximum, 4096)); threads: CPU threads
    (default all cores). The rest are engine options (include/mmfp4/engine.h). check/verbose default to
    mmfp4.check_finite() / mmfp4.set_verbose(). Raises mmfp4.Error naming what is wrong with the folder.
    """
    opts = dict(max_batch=max_batch, max_context=max_context, threads=threads, max_batch_tokens=max_batch_tokens,
                kv_blocks=kv_blocks, max_queue=max_queue, prefix_caching=prefix_caching)
    opts = {k: v for k, v in opts.items() if v is not None}
    state = settings.defaults()
    opts["check"] = state["check"] if check is None else bool(check)
    opts["verbose"] = state["verbose"] if verbose is None else bool(verbose)
    model = Model(_mmfp4._Engine.open(os.fspath(path), device, **opts))
    settings.register(model)
    return model


def _use_cache(use_cache: bool, request) -> bool:
    # The engine samples a first token as soon as a prompt is in; a request for no tokens takes the
    # recomputing path, which validates the request and finishes without computing anything.
    return bool(use_cache) and request.max_new_tokens != 0


DEFAULT_MAX_NEW_TOKENS = 128


class Model:
    def __init__(self, engine):
        self._engine = engine
        self.config = Config(engine.config)
        self.tokenizer: Optional[Tokenizer] = Tokenizer(engine) if engine.has_tokenizer else None
        self.path: str = engine.path
        self.device: str = self.config.device
        self.vocab_size: int = engine.vocab_size
        self.max_context: int = engine.max_context
        self.eos_token_id = list(engine.eos_ids)

    # ----------------------------------------------------------------------------------------------------------
    # Logits
    # ----------------------------------------------------------------------------------------------------------
    def __call__(self, input_ids, attention_mask=None) -> np.ndarray:
        """Logits at every position, float32 [batch, seq, vocab] (a 1-D input is a batch of one).

        Each sequence runs from scratch (nothing cached between calls), up to max_context tokens. Ragged lists
        are right-padded and an attention_mask's 0s are skipped: positions without a token hold 0.
        """
        batch = to_batch(input_ids, attention_mask)
        return place_logits(self._engine.score(batch.rows), batch)

    forward = __call__

    # ----------------------------------------------------------------------------------------------------------
    # Generation
    # ----------------------------------------------------------------------------------------------------------
    def generate(self, input_ids, *, max_new_tokens: Optional[int] = None, use_cache: bool = True, do_sample=None,
                 temperature=None, top_k=None, top_p=None, min_p=None, repetition_penalty=None,
                 presence_penalty=None, frequency_penalty=None, seed=None, stop=None, eos_token_id=None,
                 ignore_eos: bool = False, pad_token_id=None, attention_mask=None, stream: bool = False,
                 return_dict_in_generate: bool = False):
        """Continues each prompt; returns prompt + new ids (int64) in the input's shape, as transformers does.

        input_ids: ids as for model(...), or a str (encoded with the model's tokenizer). Several prompts run
        batched in the engine, each exactly as it would alone. A 2-D result has one row per prompt: the input
        row (its left padding kept), the new ids, then pad_token_id (default: the first EOS id) up to the
        longest row. Generation stops at an EOS id (not included), a stop string (text ends before it) or after
        max_new_tokens (default: 128, or what is left of the context). use_cache=False recomputes the whole
        sequence for every token (slow; same ids). Sampling: temperature > 0 samples (do_sample=False forces
        greedy); seed makes it reproducible (each row uses the same seed, so a row equals the same prompt
        generated alone). eos_token_id replaces the model's EOS ids; ignore_eos runs to max_new_tokens.
        stream=True returns model.stream(...) instead. return_dict_in_generate=True returns a
        GenerationOutput (sequences, new_ids, texts, finish_reasons).
        """
        options = dict(max_new_tokens=max_new_tokens, use_cache=use_cache, do_sample=do_sample,
                       temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                       repetition_penalty=repetition_penalty, presence_penalty=presence_penalty,
                       frequency_penalty=frequency_penalty, seed=seed, stop=stop, eos_token_id=eos_token_id,
                       ignore_eos=ignore_eos)
        if stream:
            return self.stream(input_ids, attention_mask=attention_mask, **options)
        batch = self._batch(input_ids, attention_mask)
        results = self._run(batch, **options)
        new_ids = [np.asarray(r.ids, dtype=np.int64) for r in results]
        if pad_token_id is None:
            pad_token_id = self._pad_id(eos_token_id)
        seqs = sequences(batch, new_ids, pad_token_id)
        if not return_dict_in_generate:
            return seqs
        return GenerationOutput(seqs, new_ids, [r.text for r in results], [r.reason for r in results])

    def stream(self, input_ids, *, attention_mask=None, max_new_tokens: Optional[int] = None,
               use_cache: bool = True, seed=None, stop=None, eos_token_id=None, ignore_eos: bool = False,
               **sampling) -> Stream:
        """Starts generating one prompt and returns a Stream: iterate it for StreamToken(id, text) as each token
        is produced. Options as for generate(). Several streams may run at once: the engine batches them."""
        batch = self._batch(input_ids, attention_mask)
        if len(batch.rows) != 1:
            raise ValueError(f"stream() takes one prompt, got {len(batch.rows)} (start one stream per prompt: "
                             "they run batched)")
        request = self._request(batch.rows[0], max_new_tokens, seed, stop, eos_token_id, ignore_eos, sampling)
        gen = _mmfp4._start(self._engine, batch.rows[0], request, _use_cache(use_cache, request))
        return Stream(gen, batch.rows[0].tolist())

    def _batch(self, input_ids, attention_mask) -> Batch:
        if isinstance(input_ids, str):
            if self.tokenizer is None:
                raise _mmfp4.Error(f"{self.path}: this model folder has no tokenizer.json (give token ids)")
            input_ids = self.tokenizer.encode(input_ids)
        return to_batch(input_ids, attention_mask)

    def _request(self, row, max_new_tokens, seed, stop, eos_token_id, ignore_eos, sampling):
        if max_new_tokens is None:  # an explicit value past the context is the engine's error; a default is not
            max_new_tokens = min(DEFAULT_MAX_NEW_TOKENS, max(1, self.max_context - len(row)))
        params = sampling_params(self._engine.default_sampling, seed=random_seed() if seed is None else seed,
                                 **sampling)
        return make_request(max_new_tokens, params, stop, eos_token_id, ignore_eos)

    def _run(self, batch: Batch, *, max_new_tokens, use_cache, seed, stop, eos_token_id, ignore_eos, **sampling):
        """Runs every row; returns their _Completions. All rows are submitted first (the engine batches them);
        when its queue is full, the oldest rows are collected to make room."""
        gens, done = [], []
        try:
            for row in batch.rows:
                request = self._request(row, max_new_tokens, seed, stop, eos_token_id, ignore_eos, sampling)
                while True:
                    try:
                        gens.append(_mmfp4._start(self._engine, row, request, _use_cache(use_cache, request)))
                        break
                    except _mmfp4.QueueFull:
                        if len(done) == len(gens):
                            raise
                        done.append(gens[len(done)].collect())
            done.extend(g.collect() for g in gens[len(done):])
        except BaseException:  # Ctrl-C or a bad row: nothing keeps running in the engine
            for g in gens:
                g.cancel()
            raise
        for r in done:
            if r.reason == "error":
                raise _mmfp4.Error(r.error)
        return done

    def _pad_id(self, eos_token_id) -> int:
        if eos_token_id is not None:
            ids = eos_token_id if isinstance(eos_token_id, (list, tuple, np.ndarray)) else [eos_token_id]
            return int(ids[0])
        return self.eos_token_id[0] if self.eos_token_id else 0

    # ----------------------------------------------------------------------------------------------------------
    # Lifetime, stats
    # ----------------------------------------------------------------------------------------------------------
    def stats(self) -> dict:
        """Engine counters: requests, tokens, prefix-cache hits, KV blocks in use, busy time."""
        return self._engine.stats

    def close(self) -> None:
        """Stops the engine (running generations end as cancelled). Memory is freed when the last reference to
        the model and its streams goes; `with mmfp4.load(...) as model:` closes at the end of the block."""
        self._engine.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self) -> str:
        return f"mmfp4.Model({self.path!r}, {self.config.summary}, on {self.device})"
