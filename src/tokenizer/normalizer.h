// Normalizers of tokenizer.json ("normalizer"): rewrite a piece's text before pre-tokenization. Supported:
// NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Prepend, Replace, Nmt and Sequence. Any other type is an
// error at load that names it.
#pragma once

#include <memory>
#include <string>

#include "core/json.h"
#include "tokenizer/piece.h"

namespace mmfp4 {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(Piece& p) const = 0;
};

// Builds the normalizer described by `v` (an object with "type"); null gives nullptr. `what` names the place in
// the file for errors, e.g. "tokenizer.json: normalizer".
std::unique_ptr<Normalizer> make_normalizer(const json::Value& v, const std::string& what);

// A pattern object of Replace/Split components, {"String": s} (literal) or {"Regex": r}.
Regex make_pattern(const json::Value& pattern, const std::string& what);

}  // namespace mmfp4
