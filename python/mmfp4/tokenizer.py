"""model.tokenizer: the model folder's tokenizer.json and chat template, with transformers' method names and
defaults (decode keeps special tokens unless told; apply_chat_template tokenizes unless told), so code written
for a transformers tokenizer runs unchanged. Encoding and decoding release the GIL."""

import json
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from .inputs import to_batch


class Encoding(dict):
    """tokenizer(text): a dict {"input_ids", "attention_mask"} also readable as attributes (enc.input_ids), so
    model.generate(**tokenizer(texts, return_tensors="np")) works as with transformers."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Tokenizer:
    def __init__(self, engine):
        self._engine = engine
        info = engine.tokenizer_info
        self.vocab_size: int = info["vocab_size"]
        self.bos_token_id: Optional[int] = info["bos_token_id"]
        self.eos_token_id: Optional[int] = info["eos_token_id"]
        self.bos_token: Optional[str] = info["bos_token"]
        self.eos_token: Optional[str] = info["eos_token"]
        self.pad_token_id: Optional[int] = self.eos_token_id  # what generate() pads ragged rows with

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str, add_special_tokens: bool = True) -> List[int]:
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__}")
        return self._engine.tokenize(text, add_special_tokens)

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Text of 1-D ids (a list, an array, one row of generate()'s output, or a single id)."""
        if isinstance(ids, (int, np.integer)):
            ids = [ids]
        batch = to_batch(ids)
        if batch.ndim != 1:
            raise ValueError("decode takes one sequence of ids; use batch_decode for several")
        return self._engine.detokenize(batch.rows[0], skip_special_tokens)

    def batch_decode(self, sequences, skip_special_tokens: bool = False) -> List[str]:
        return [self._engine.detokenize(r, skip_special_tokens) for r in to_batch(sequences).rows]

    def __call__(self, text: Union[str, Sequence[str]], add_special_tokens: bool = True,
                 return_tensors: Optional[str] = None) -> Encoding:
        """input_ids and attention_mask of a text (lists) or of several texts (lists of lists). With
        return_tensors="np" they are 2-D int64 arrays, left-padded with pad_token_id (the padding side
        generation wants)."""
        single = isinstance(text, str)
        ids = [self.encode(t, add_special_tokens) for t in ([text] if single else text)]
        if return_tensors is None:
            masks = [[1] * len(r) for r in ids]
            return Encoding(input_ids=ids[0] if single else ids, attention_mask=masks[0] if single else masks)
        if return_tensors != "np":
            raise ValueError(f"return_tensors must be None or 'np', got {return_tensors!r} (NumPy arrays convert "
                             "to torch with torch.from_numpy)")
        width = max(len(r) for r in ids)
        input_ids = np.full((len(ids), width), self.pad_token_id or 0, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for i, r in enumerate(ids):
            input_ids[i, width - len(r):] = r
            mask[i, width - len(r):] = 1
        return Encoding(input_ids=input_ids, attention_mask=mask)

    def apply_chat_template(self, messages: List[Dict], add_generation_prompt: bool = False, tokenize: bool = True,
                            **kwargs) -> Union[str, List[int]]:
        """Renders messages ([{"role": ..., "content": ...}]) with the model's chat template; extra keyword
        arguments (enable_thinking=False, tools=[...]) reach the template as variables. Returns the ids of the
        rendered text (no special tokens added: the template has them), or the text with tokenize=False."""
        text = self._engine.apply_chat_template(json.dumps(messages), add_generation_prompt, json.dumps(kwargs))
        return self.encode(text, add_special_tokens=False) if tokenize else text

    def convert_tokens_to_ids(self, token: str) -> Optional[int]:
        return self._engine.token_to_id(token)

    def convert_ids_to_tokens(self, id: int) -> Optional[str]:
        return self._engine.id_to_token(int(id))

    def __repr__(self) -> str:
        return f"mmfp4.Tokenizer(vocab_size={self.vocab_size}, eos_token={self.eos_token!r})"
