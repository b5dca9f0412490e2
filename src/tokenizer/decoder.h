// Decoders of tokenizer.json ("decoder"): token strings -> text, as Hugging Face's decode_chain. Supported:
// ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, BPEDecoder and Sequence; no decoder joins the tokens
// with spaces (as HF does). Any other type, or a token-boundary-sensitive decoder placed after a step that joins
// all tokens into one (Fuse, ByteLevel), is an error at load that names it.
//
// Streaming: the same chain also decodes a window of the sequence (the tokens after the last cut) and says
// whether cutting after the window is safe, i.e. decode(all) == decode(up to here) + decode(rest). The state
// carries what the full decode would know: whether the window starts the sequence (Metaspace drops the
// replacement in the first token, Strip strips the text start) and whether it ends it (BPEDecoder's last token,
// Strip's text end).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/json.h"

namespace mmfp4 {

struct DecodeState {
  bool at_start = true;    // the window's first token is the sequence's first token
  bool at_end = true;      // the window's last token is the sequence's last token
  bool collapsed = false;  // a previous step joined all tokens into one (its text spans the whole window)
  bool safe = true;        // output: cutting the sequence after this window gives the same text
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Rewrites the token list in place (HF's decode_chain).
  virtual void decode_chain(std::vector<std::string>& tokens, DecodeState& st) const = 0;
  // Whether this step's result depends on token boundaries in a way a window cannot reproduce once the tokens
  // were joined by an earlier step (see make_decoder).
  virtual bool needs_token_boundaries() const { return false; }
  virtual bool joins_tokens() const { return false; }
};

std::unique_ptr<Decoder> make_decoder(const json::Value& v, const std::string& what);

// The whole chain: decodes `tokens` (the window) into text. A null decoder joins the tokens with " ".
std::string run_decoder(const Decoder* decoder, std::vector<std::string> tokens, DecodeState& st);

}  // namespace mmfp4
