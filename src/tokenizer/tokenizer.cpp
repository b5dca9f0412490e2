#include "tokenizer/tokenizer.h"

#include "core/error.h"
#include "core/log.h"
#include "core/mapped_file.h"
#include "tokenizer/added_vocab.h"
#include "tokenizer/bpe.h"
#include "tokenizer/decoder.h"
#include "tokenizer/json_read.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/utf8.h"

namespace mmfp4 {

namespace {
constexpr uint8_t kExists = 1, kSpecial = 2, kAdded = 4;
}

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::from_dir(const std::string& dir, const TokenizerOptions& options) {
  std::string tj = dir + "/tokenizer.json";
  if (!file_exists(tj)) fail(dir, ": no tokenizer.json (only Hugging Face tokenizer.json tokenizers are supported)");
  std::string cfg_path = dir + "/tokenizer_config.json";
  std::string cfg = file_exists(cfg_path) ? read_file(cfg_path) : std::string();
  return from_json(read_file(tj), cfg, dir, options);
}

std::unique_ptr<Tokenizer> Tokenizer::from_json(const std::string& tokenizer_json_text,
                                                const std::string& tokenizer_config_json_text, const std::string& what,
                                                const TokenizerOptions& options) {
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  t->options_ = options;
  std::string tw = what + "/tokenizer.json";
  json::Value tj = json::parse(tokenizer_json_text, tw);
  if (!tokenizer_config_json_text.empty())
    t->config_ = json::parse(tokenizer_config_json_text, what + "/tokenizer_config.json");
  t->load(tj, tw);
  t->load_config(what + "/tokenizer_config.json");
  return t;
}

void Tokenizer::load(const json::Value& tj, const std::string& w) {
  if (!tj.is_object()) fail(w, ": expected a JSON object");
  if (const json::Value* v = tj.find("version"); v && !(v->is_string() && v->as_string() == "1.0"))
    fail(w, ": unknown tokenizer.json version (expected \"1.0\")");
  for (const char* key : {"truncation", "padding"})
    if (const json::Value* v = tj.find(key); v && !v->is_null())
      log_warn(w, ": \"", key, "\" is ignored (an engine encodes whole prompts; transformers also turns it off)");

  const json::Value& model = jr::field(tj, "model", w);
  std::string mw = w + ": model";
  std::string type = model.is_object() ? jr::str_or(model, "type", "", mw) : "";
  if (type.empty() && model.find("merges")) type = "BPE";  // very old files have no "type"
  if (type != "BPE")
    fail(mw, ": model type \"", type, "\" is not supported (only BPE: WordPiece, WordLevel and Unigram are not)");
  model_ = std::make_unique<BpeModel>(model, mw + " (BPE)");

  normalizer_ = make_normalizer(tj["normalizer"], w + ": normalizer");
  pre_tokenizer_ = make_pre_tokenizer(tj["pre_tokenizer"], w + ": pre_tokenizer");
  post_processor_ = make_post_processor(tj["post_processor"], w + ": post_processor");
  decoder_ = make_decoder(tj["decoder"], w + ": decoder");
  added_ = std::make_unique<AddedVocab>();
  added_->load(tj["added_tokens"], *model_, normalizer_.get(), w + ": added_tokens");

  int32_t n = std::max(model_->max_id(), added_->max_id()) + 1;
  id_flags_.assign(size_t(n), 0);
  for (int32_t id = 0; id <= model_->max_id(); ++id)
    if (model_->id_to_token(id)) id_flags_[size_t(id)] |= kExists;
  for (const AddedToken& t : added_->tokens()) id_flags_[size_t(t.id)] |= kExists | kAdded;
  // HF decides "special" by the token's text: any id whose text is a special token's content is skipped.
  for (int32_t id = 0; id < n; ++id)
    if ((id_flags_[size_t(id)] & kExists) && added_->is_special_content(token_text(id)))
      id_flags_[size_t(id)] |= kSpecial;
}

void Tokenizer::load_config(const std::string& w) {
  if (config_.is_null()) return;
  if (!config_.is_object()) fail(w, ": expected a JSON object");
  // bos_token / eos_token: a string, or an AddedToken object {"content": ...}, or null.
  auto token_field = [&](const char* key, std::string& token, std::optional<int32_t>& id) {
    const json::Value* v = config_.find(key);
    if (!v || v->is_null()) return;
    if (v->is_string()) token = v->as_string();
    else if (v->is_object()) token = jr::str(*v, "content", cat(w, ": ", key));
    else fail(w, ": \"", key, "\" must be a string or {\"content\": ...}");
    id = token_to_id(token);
    if (!id) log_warn(w, ": ", key, " \"", token, "\" is not in the vocabulary");
  };
  token_field("bos_token", bos_token_, bos_id_);
  token_field("eos_token", eos_token_, eos_id_);
  if (options_.add_bos_eos_from_config) {
    add_bos_ = jr::boolean_or(config_, "add_bos_token", false, w) && bos_id_;
    add_eos_ = jr::boolean_or(config_, "add_eos_token", false, w) && eos_id_;
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  size_t valid = utf8::valid_prefix(text);
  if (valid != text.size()) fail("tokenizer: input text is not valid UTF-8 (at byte ", valid, ")");
  std::vector<Piece> pieces(1);
  pieces[0].text = std::string(text);
  pieces[0].at_origin = true;
  if (text.empty()) pieces.clear();
  added_->split_raw(pieces);
  if (normalizer_)
    for (Piece& p : pieces)
      if (p.token < 0) normalizer_->normalize(p);
  added_->split_normalized(pieces);
  if (pre_tokenizer_) pre_tokenizer_->pre_tokenize(pieces);
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  for (const Piece& p : pieces) {
    if (p.token >= 0) ids.push_back(p.token);
    else model_->tokenize(p.text, p.raw_bytes, ids);
  }
  if (post_processor_) post_processor_->process(ids, add_special_tokens);
  if (add_special_tokens) {
    if (add_bos_ && (ids.empty() || ids.front() != *bos_id_)) ids.insert(ids.begin(), *bos_id_);
    if (add_eos_ && (ids.empty() || ids.back() != *eos_id_)) ids.push_back(*eos_id_);
  }
  return ids;
}

std::string_view Tokenizer::token_text(int32_t id) const {
  if (id < 0 || size_t(id) >= id_flags_.size() || !(id_flags_[size_t(id)] & kExists))
    fail("tokenizer: token id ", id, " is not in the vocabulary (vocab_size ", vocab_size(), ")");
  if (id_flags_[size_t(id)] & kAdded) return *added_->decoded_text(id);
  return *model_->id_to_token(id);
}

bool Tokenizer::skip_in_decode(int32_t id, bool skip_special_tokens) const {
  return skip_special_tokens && is_special(id);
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    std::string_view t = token_text(id);
    if (!skip_in_decode(id, skip_special_tokens)) tokens.emplace_back(t);
  }
  DecodeState st;
  return run_decoder(decoder_.get(), std::move(tokens), st);
}

int32_t Tokenizer::vocab_size() const { return int32_t(id_flags_.size()); }

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  if (id < 0 || size_t(id) >= id_flags_.size() || !(id_flags_[size_t(id)] & kExists)) return std::nullopt;
  return std::string(token_text(id));
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (auto id = added_->by_content(token)) return id;
  return model_->token_to_id(token);
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && size_t(id) < id_flags_.size() && (id_flags_[size_t(id)] & kSpecial);
}

// ---------------------------------------------------------------------------------------------------------------
// StreamDecoder: decodes the tokens since the last cut as a window and cuts again as soon as the decoder chain
// says the window's text is final (see DecodeState). Each push costs a decode of the (usually 1-3 token) window.
// ---------------------------------------------------------------------------------------------------------------
StreamDecoder::StreamDecoder(const Tokenizer& tok, bool skip_special_tokens)
    : tok_(tok), skip_special_(skip_special_tokens) {}

std::string StreamDecoder::push(int32_t id) {
  std::string_view t = tok_.token_text(id);
  if (tok_.skip_in_decode(id, skip_special_)) return {};
  pending_.emplace_back(t);
  DecodeState st;
  st.at_start = !started_;
  st.at_end = false;
  std::string text = run_decoder(tok_.decoder_.get(), pending_, st);
  if (!st.safe) return {};
  pending_.clear();
  started_ = true;
  return text;
}

std::string StreamDecoder::flush() {
  std::string text;
  if (!pending_.empty()) {
    DecodeState st;
    st.at_start = !started_;
    st.at_end = true;
    text = run_decoder(tok_.decoder_.get(), pending_, st);
  }
  pending_.clear();
  started_ = false;
  return text;
}

}  // namespace mmfp4
