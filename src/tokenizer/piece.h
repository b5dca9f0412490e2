// A piece of the input on its way through the encoding pipeline (Hugging Face's `Split` of a
// `PreTokenizedString`): added-token matching cuts the text into pieces, normalizers rewrite a piece's text,
// pre-tokenizers cut pieces further, and the model turns each remaining piece into ids.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/regex.h"

namespace mmfp4 {

struct Piece {
  std::string text;
  int32_t token = -1;       // >= 0: an added token, final (no normalizer, pre-tokenizer or model touches it)
  bool at_origin = false;   // starts at offset 0 of the original input (Metaspace's prepend_scheme "first")
  uint32_t inserted = 0;    // leading bytes of `text` that were prepended (no counterpart in the original input)
  bool raw_bytes = false;   // a ByteLevel pre-tokenizer ran: `text` still holds the raw bytes, mapped lazily
};

// Hugging Face's SplitDelimiterBehavior.
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// Parses "Removed", "Isolated", ... naming `what` on an unknown value.
SplitBehavior parse_split_behavior(const std::string& s, const std::string& what);

// Cuts `p` at the given matches (ordered, non-overlapping spans of p.text) according to `behavior` (with
// `invert`, the matches and the text between them swap roles) and appends the non-empty results to `out`.
void split_piece(const Piece& p, const std::vector<Span>& matches, SplitBehavior behavior, bool invert,
                 std::vector<Piece>& out);

// Slice [b, e) of p as a new piece, keeping track of at_origin/inserted.
Piece sub_piece(const Piece& p, size_t b, size_t e);

}  // namespace mmfp4
