// libFuzzer target for the tokenizer: arbitrary bytes through encode and decode of a byte-level tokenizer (our
// small model's, from ../shared) and a Llama-2 byte-fallback one (tests/tokenizer/data). Properties checked:
//   - invalid UTF-8 is rejected with mmfp4::Error, never a crash;
//   - every id is inside the vocabulary;
//   - byte-level tokenizer without a normalizer: decode(encode(text)) == text;
//   - decode of any ids is valid UTF-8, and the streaming decoder's pieces concatenate to decode().
// MMFP4_FUZZ_TOKENIZERS=dir1:dir2 overrides the tokenizer folders.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/mapped_file.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

using namespace mmfp4;

namespace {

struct Subject {
  std::unique_ptr<Tokenizer> tok;
  bool round_trips;  // decode(encode(text)) == text holds for every valid text
};

std::vector<Subject>& subjects() {
  static std::vector<Subject> s = [] {
    std::vector<Subject> out;
    std::string root = __FILE__;
    root = root.substr(0, root.rfind("/fuzz/"));
    std::vector<std::pair<std::string, bool>> dirs = {{root + "/../shared/fixtures/tokenizers/tiny", true},
                                                      {root + "/tests/tokenizer/data/llama2_legacy", false}};
    if (const char* env = std::getenv("MMFP4_FUZZ_TOKENIZERS")) {
      dirs.clear();
      std::string list = env;
      for (size_t b = 0; b <= list.size();) {
        size_t e = list.find(':', b);
        if (e == std::string::npos) e = list.size();
        if (e > b) dirs.emplace_back(list.substr(b, e - b), false);
        b = e + 1;
      }
    }
    for (const auto& [dir, rt] : dirs) {
      bool found = file_exists(dir + "/tokenizer.json");
      std::fprintf(stderr, "fuzz_tokenizer: %s %s\n", found ? "using" : "not found, skipped:", dir.c_str());
      if (found) out.push_back({Tokenizer::from_dir(dir), rt});
    }
    if (out.empty()) {
      std::fprintf(stderr, "fuzz_tokenizer: no tokenizer found (set MMFP4_FUZZ_TOKENIZERS)\n");
      std::abort();
    }
    return out;
  }();
  return s;
}

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_tokenizer: property violated: %s\n", what);
    std::abort();
  }
}

std::string stream(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip) {
  StreamDecoder sd(tok, skip);
  std::string out;
  for (int32_t id : ids) out += sd.push(id);
  return out + sd.flush();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  bool valid = utf8::is_valid(text);
  for (Subject& s : subjects()) {
    const Tokenizer& tok = *s.tok;
    std::vector<int32_t> ids;
    try {
      ids = tok.encode(text, true);
      check(valid, "invalid UTF-8 was accepted");
    } catch (const Error&) {
      check(!valid, "valid UTF-8 was rejected");
    }
    for (int32_t id : ids) check(id >= 0 && id < tok.vocab_size(), "id outside the vocabulary");
    if (valid) {
      std::string back = tok.decode(tok.encode(text, false), false);
      if (s.round_trips) check(back == text, "decode(encode(text)) != text");
      check(stream(tok, ids, false) == tok.decode(ids, false), "stream != decode");
      check(stream(tok, ids, true) == tok.decode(ids, true), "stream != decode (skip special)");
    }
    // The bytes as arbitrary ids.
    std::vector<int32_t> raw;
    for (size_t i = 0; i + 1 < size; i += 2) {
      int32_t id = int32_t((data[i] << 8 | data[i + 1]) % tok.vocab_size());
      if (tok.id_to_token(id)) raw.push_back(id);  // ids a sparse vocabulary lacks are errors, tested elsewhere
    }
    std::string dec = tok.decode(raw, false);
    check(utf8::is_valid(dec), "decode produced invalid UTF-8");
    check(stream(tok, raw, false) == dec, "stream != decode on arbitrary ids");
  }
  return 0;
}
