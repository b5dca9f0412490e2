"""Token ids in the shapes users pass them -> one int32 array per sequence, and results back in those shapes.

Accepted: a list of ints or a 1-D array (one sequence); a list of lists/arrays, ragged or not, or a 2-D array (a
batch); anything with ``__array__`` (a CPU torch tensor, say). A 2-D input may come with an ``attention_mask`` of
the same shape whose 1s form one contiguous run per row (left or right padding, as a transformers tokenizer
makes it); only the tokens under the 1s are run. The engine runs ragged sequences natively, so padding never
reaches it: it only matters for where results go in the output arrays.
"""

import numbers
from typing import List, NamedTuple

import numpy as np

_INT32 = np.iinfo(np.int32)


class Batch(NamedTuple):
    rows: List[np.ndarray]      # each sequence's real tokens, int32, for the engine
    prefixes: List[np.ndarray]  # each input row up to the end of its real tokens (left padding kept), int64
    offsets: List[int]          # where each row's real tokens start in the input's layout
    width: int                  # the input's width (the longest row of a ragged list)
    ndim: int                   # 1: one sequence was given; 2: a batch


def _as_int_array(x, what: str) -> np.ndarray:
    try:
        a = np.asarray(x)
    except (ValueError, OverflowError) as e:
        raise ValueError(f"{what}: not an array of token ids ({e})") from None
    if a.dtype == object or not (np.issubdtype(a.dtype, np.integer) and a.dtype != np.bool_):
        if a.size == 0 and a.dtype == np.float64:  # [] is float64 to NumPy
            return a.astype(np.int64)
        raise TypeError(f"{what}: token ids must be integers, got an array of {a.dtype}")
    return a


def _check_int32(a: np.ndarray, what: str) -> None:
    # Larger ids cannot even be passed to the engine; smaller ones get the engine's own vocabulary check.
    flat = a.reshape(-1)
    outside = flat[(flat < _INT32.min) | (flat > _INT32.max)]
    if outside.size:
        bad = int(outside[0])
        raise ValueError(f"{what}: token id {bad} is outside the vocabulary (not even a 32-bit integer)")


def _is_id(x) -> bool:
    return isinstance(x, (numbers.Integral, np.integer)) and not isinstance(x, bool)


def to_batch(input_ids, attention_mask=None) -> Batch:
    """Normalizes ``input_ids`` (and ``attention_mask``); raises TypeError/ValueError naming what is wrong."""
    if isinstance(input_ids, (str, bytes)):
        raise TypeError("input_ids must be token ids, not text: encode it with model.tokenizer.encode(text)")
    ragged = isinstance(input_ids, (list, tuple)) and len(input_ids) > 0 and not all(_is_id(x) for x in input_ids)
    if ragged:
        if attention_mask is not None:
            arr = _as_int_array(input_ids, "input_ids")  # a mask needs a rectangular batch
            return _masked(arr, attention_mask)
        rows = [_as_int_array(r, f"input_ids[{i}]") for i, r in enumerate(input_ids)]
        for i, r in enumerate(rows):
            if r.ndim != 1:
                raise ValueError(f"input_ids[{i}] must be a 1-D sequence of token ids, got shape {r.shape}")
            _check_int32(r, f"input_ids[{i}]")
        width = max(len(r) for r in rows)
        return Batch([r.astype(np.int32) for r in rows], [r.astype(np.int64) for r in rows], [0] * len(rows),
                     width, 2)
    arr = _as_int_array(input_ids, "input_ids")
    if arr.ndim not in (1, 2):
        raise ValueError(f"input_ids must be 1-D (one sequence) or 2-D (a batch), got shape {arr.shape}")
    if arr.ndim == 2 and arr.shape[0] == 0:
        raise ValueError("input_ids is an empty batch")
    if attention_mask is not None:
        return _masked(arr, attention_mask)
    _check_int32(arr, "input_ids")
    rows = [arr] if arr.ndim == 1 else list(arr)
    return Batch([r.astype(np.int32) for r in rows], [r.astype(np.int64) for r in rows], [0] * len(rows),
                 arr.shape[-1], arr.ndim)


def _masked(arr: np.ndarray, attention_mask) -> Batch:
    mask = np.asarray(attention_mask)
    if mask.shape != arr.shape:
        raise ValueError(f"attention_mask has shape {mask.shape}, input_ids {arr.shape}: they must be equal")
    if arr.ndim == 1:
        arr, mask = arr[None, :], mask[None, :]
    rows, prefixes, offsets = [], [], []
    for i in range(arr.shape[0]):
        on = np.flatnonzero(mask[i])
        if on.size == 0:
            raise ValueError(f"attention_mask row {i} is all 0: the sequence has no tokens")
        begin, end = int(on[0]), int(on[-1]) + 1
        if end - begin != on.size:
            raise ValueError(f"attention_mask row {i} is not one run of 1s (only left or right padding is "
                             "supported)")
        _check_int32(arr[i, begin:end], f"input_ids[{i}]")
        rows.append(arr[i, begin:end].astype(np.int32))
        prefixes.append(arr[i, :end].astype(np.int64))
        offsets.append(begin)
    ndim = 1 if np.asarray(attention_mask).ndim == 1 else 2
    return Batch(rows, prefixes, offsets, arr.shape[1], ndim)


def place_logits(flat: np.ndarray, batch: Batch) -> np.ndarray:
    """[sum of lengths, vocab] from Engine::score -> [batch, width, vocab]; positions without a token are 0."""
    vocab = flat.shape[1]
    lengths = [len(r) for r in batch.rows]
    if all(o == 0 for o in batch.offsets) and all(n == batch.width for n in lengths):
        return flat.reshape(len(lengths), batch.width, vocab)  # no padding: a view, no copy
    out = np.zeros((len(lengths), batch.width, vocab), dtype=np.float32)
    start = 0
    for i, (n, o) in enumerate(zip(lengths, batch.offsets)):
        out[i, o:o + n] = flat[start:start + n]
        start += n
    return out


def sequences(batch: Batch, new_ids: List[np.ndarray], pad_id: int) -> np.ndarray:
    """Each input row (its left padding kept) followed by its new tokens; rows padded at the end with pad_id."""
    rows = [np.concatenate([p, n.astype(np.int64)]) for p, n in zip(batch.prefixes, new_ids)]
    if batch.ndim == 1:
        return rows[0]
    out = np.full((len(rows), max(len(r) for r in rows)), pad_id, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out

