// Pre-tokenizers of tokenizer.json ("pre_tokenizer"): cut the normalized pieces into the words the model sees.
// Supported: Split (regex or literal, every behavior, invert), ByteLevel (add_prefix_space, use_regex), Metaspace
// (prepend_scheme always/first/never, split), Digits, Whitespace, WhitespaceSplit, Punctuation, BertPreTokenizer,
// CharDelimiterSplit and Sequence. Any other type is an error at load that names it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/json.h"
#include "tokenizer/piece.h"

namespace mmfp4 {

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces every piece that is not an added token by its sub-pieces.
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};

// Builds the pre-tokenizer described by `v`; null gives nullptr. `what` names the place for errors.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json::Value& v, const std::string& what);

// Maps a piece left in raw bytes by a ByteLevel pre-tokenizer to byte-level characters (done lazily, only when
// something after the ByteLevel step needs the text: usually the BPE model reads the raw bytes directly).
void materialize_byte_level(Piece& p);

}  // namespace mmfp4
