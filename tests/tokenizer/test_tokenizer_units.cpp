// Unit tests of the tokenizer's parts: UTF-8 handling, the Oniguruma -> PCRE2 translation and match iteration,
// split behaviors, normalizers, the BPE merge order, decoders and the streaming decoder's cut rules. Expected
// values that are not obvious were taken from Hugging Face's library (noted where so).
#include <gtest/gtest.h>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/piece.h"
#include "tokenizer/regex.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"
#include "tokenizer/utf8.h"

using namespace mmfp4;

namespace {

const std::string kFFFD = "\xEF\xBF\xBD";

std::vector<std::string> split(std::string_view text, const char* pattern, SplitBehavior b, bool invert = false) {
  Regex re(pattern, "test");
  std::vector<Span> m;
  re.find_all(text, m);
  Piece p;
  p.text = std::string(text);
  std::vector<Piece> out;
  split_piece(p, m, b, invert, out);
  std::vector<std::string> s;
  for (const Piece& x : out) s.push_back(x.text);
  return s;
}

std::string normalize(const char* json_text, std::string text) {
  auto n = make_normalizer(json::parse(json_text), "test");
  Piece p;
  p.text = std::move(text);
  n->normalize(p);
  return p.text;
}

// A minimal tokenizer.json around the given parts.
std::string tokenizer_json(const std::string& model, const std::string& extra = "") {
  return R"({"version": "1.0", "added_tokens": [], "normalizer": null, "pre_tokenizer": null,
             "post_processor": null, "decoder": null, )" +
         extra + R"("model": )" + model + "}";
}

}  // namespace

TEST(TokenizerUtf8, LossyReplacesMaximalSubparts) {
  EXPECT_EQ(utf8::lossy("abc"), "abc");
  EXPECT_EQ(utf8::lossy("\xE2\x82" "A"), kFFFD + "A");          // truncated 3-byte sequence: one U+FFFD
  EXPECT_EQ(utf8::lossy("\xF0\x80"), kFFFD + kFFFD);            // F0 80 is not a valid prefix: two
  EXPECT_EQ(utf8::lossy("\xED\xA0\x80"), kFFFD + kFFFD + kFFFD);  // a surrogate: each byte
  EXPECT_EQ(utf8::lossy("\xC3\xA9\xFF"), "\xC3\xA9" + kFFFD);
  EXPECT_TRUE(utf8::is_valid("\xF0\x9F\x98\x80"));
  EXPECT_FALSE(utf8::is_valid("\xC0\xAF"));
  EXPECT_EQ(utf8::valid_prefix("abcdefghij\x80"), 10u);
}

TEST(TokenizerUtf8, BoundaryDetection) {
  EXPECT_TRUE(utf8::ends_on_boundary(""));
  EXPECT_TRUE(utf8::ends_on_boundary("a\xC3\xA9"));
  EXPECT_FALSE(utf8::ends_on_boundary("a\xC3"));
  EXPECT_FALSE(utf8::ends_on_boundary("\xF0\x9F\x98"));
  EXPECT_TRUE(utf8::ends_on_boundary("\x80"));       // a stray continuation byte is final (one U+FFFD)
  EXPECT_TRUE(utf8::ends_on_boundary("\xE2\x41"));   // already broken: more bytes cannot repair it
}

TEST(TokenizerByteLevel, AlphabetRoundTrips) {
  EXPECT_EQ(byte_level::char_of(' '), 0x120u);  // 'Ġ'
  EXPECT_EQ(byte_level::char_of('\n'), 0x10Au);  // 'Ċ'
  EXPECT_EQ(byte_level::char_of('A'), uint32_t('A'));
  for (int b = 0; b < 256; ++b) EXPECT_EQ(byte_level::byte_of(byte_level::char_of(uint8_t(b))), b);
  EXPECT_EQ(byte_level::byte_of(0x4E2D), -1);
}

TEST(TokenizerRegex, TranslatesOnigurumaEscapes) {
  std::string t = translate_pattern(R"(\s+(?!\S)|[^\s\p{L}])", "test");
  EXPECT_EQ(t.find("\\s"), std::string::npos);
  EXPECT_NE(t.find("\\x{3000}"), std::string::npos);
  EXPECT_NE(t.find("\\x{1C89}"), std::string::npos);  // a letter newer than PCRE2's Unicode tables
  EXPECT_NE(translate_pattern(R"(\u00e9)", "test").find("\\x{00e9}"), std::string::npos);
  EXPECT_THROW(translate_pattern(R"([^\S])", "test"), Error);
  EXPECT_THROW(translate_pattern(R"([a-z&&[^aeiou]])", "test"), Error);
  EXPECT_THROW(Regex("(unclosed", "test"), Error);

  // Oniguruma's classes: \s excludes U+180E, \w includes combining marks.
  std::vector<Span> m;
  Regex("\\s", "t").find_all("\xE1\xA0\x8E", m);
  EXPECT_TRUE(m.empty());
  Regex("\\w+", "t").find_all("e\xCC\x81", m);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].end, 3u);
}

TEST(TokenizerRegex, EmptyMatchesFollowOnigCrate) {
  // Expected pieces from Hugging Face (Split, Isolated).
  EXPECT_EQ(split("abxc", "x*", SplitBehavior::Isolated), (std::vector<std::string>{"a", "b", "x", "c"}));
  EXPECT_EQ(split("xx", "x*", SplitBehavior::Isolated), (std::vector<std::string>{"xx"}));
  EXPECT_EQ(split("abab", "(?=b)", SplitBehavior::Isolated), (std::vector<std::string>{"a", "ba", "b"}));
  EXPECT_EQ(split("ab cd", "\\b", SplitBehavior::Isolated), (std::vector<std::string>{"ab", " ", "cd"}));
}

TEST(TokenizerSplit, Behaviors) {
  using V = std::vector<std::string>;
  const char* s = "the-final--countdown";
  EXPECT_EQ(split(s, "-", SplitBehavior::Removed), (V{"the", "final", "countdown"}));
  EXPECT_EQ(split(s, "-", SplitBehavior::Isolated), (V{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(split(s, "-", SplitBehavior::MergedWithPrevious), (V{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(split(s, "-", SplitBehavior::MergedWithNext), (V{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(split(s, "-", SplitBehavior::Contiguous), (V{"the", "-", "final", "--", "countdown"}));
  EXPECT_EQ(split(s, "-", SplitBehavior::Removed, true), (V{"-", "-", "-"}));
}

TEST(TokenizerNormalizer, Components) {
  EXPECT_EQ(normalize(R"({"type": "NFC"})", "e\xCC\x81"), "\xC3\xA9");
  EXPECT_EQ(normalize(R"({"type": "NFD"})", "\xC3\xA9"), "e\xCC\x81");
  EXPECT_EQ(normalize(R"({"type": "NFKC"})", "\xEF\xAC\x81 \xE2\x91\xA0"), "fi 1");
  EXPECT_EQ(normalize(R"({"type": "Lowercase"})", "\xC4\xB0 \xCE\xA3 ABC"), "i\xCC\x87 \xCF\x83 abc");
  EXPECT_EQ(normalize(R"({"type": "Strip", "strip_left": true, "strip_right": false})", " \t x "), "x ");
  EXPECT_EQ(normalize(R"({"type": "Strip", "strip_left": true, "strip_right": true})", "\xE3\x80\x80x\n"), "x");
  EXPECT_EQ(normalize(R"({"type": "StripAccents"})", "e\xCC\x81"), "e");
  EXPECT_EQ(normalize(R"({"type": "Prepend", "prepend": "_"})", "x"), "_x");
  EXPECT_EQ(normalize(R"({"type": "Prepend", "prepend": "_"})", ""), "");
  EXPECT_EQ(normalize(R"({"type": "Replace", "pattern": {"String": " "}, "content": "__"})", "a b c"), "a__b__c");
  EXPECT_EQ(normalize(R"({"type": "Replace", "pattern": {"Regex": "\\d+"}, "content": "#"})", "a12b3"), "a#b#");
  EXPECT_EQ(normalize(R"({"type": "Sequence", "normalizers": [{"type": "Lowercase"}, {"type": "Prepend", "prepend": "^"}]})",
                      "AB"),
            "^ab");
}

TEST(TokenizerBpe, MergesInRankOrder) {
  const char* vocab = R"({"a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4, "abc": 5})";
  auto first = Tokenizer::from_json(tokenizer_json(std::string(R"({"type": "BPE", "vocab": )") + vocab +
                                                   R"(, "merges": ["a b", "ab c"]})"),
                                    "", "test");
  EXPECT_EQ(first->encode("abc", false), (std::vector<int32_t>{5}));
  // "b c" ranks first: "a" + "bc", and there is no merge for that pair. Pair form of merges.
  auto second = Tokenizer::from_json(tokenizer_json(std::string(R"({"type": "BPE", "vocab": )") + vocab +
                                                    R"(, "merges": [["b", "c"], ["a", "b"], ["ab", "c"]]})"),
                                     "", "test");
  EXPECT_EQ(second->encode("abc", false), (std::vector<int32_t>{0, 4}));
  // Characters outside the vocabulary are dropped without an unk token, as in Hugging Face (so "a" and "b" meet).
  EXPECT_EQ(second->encode("axb", false), (std::vector<int32_t>{3}));
  EXPECT_EQ(second->decode({0, 4}, false), "a bc");  // no decoder: tokens joined by spaces
}

TEST(TokenizerBpe, UnkAndByteFallback) {
  auto t = Tokenizer::from_json(tokenizer_json(R"({"type": "BPE", "unk_token": "<unk>", "fuse_unk": true,
      "vocab": {"<unk>": 0, "a": 1, "<0xC3>": 2, "<0xA9>": 3}, "merges": []})"),
                                "", "test");
  EXPECT_EQ(t->encode("axxa", false), (std::vector<int32_t>{1, 0, 1}));  // fused unk
  auto bf = Tokenizer::from_json(tokenizer_json(R"({"type": "BPE", "unk_token": "<unk>", "byte_fallback": true,
      "vocab": {"<unk>": 0, "a": 1, "<0xC3>": 2, "<0xA9>": 3}, "merges": []})",
                                                R"("decoder": {"type": "ByteFallback"}, )"),
                                 "", "test");
  EXPECT_EQ(bf->encode("a\xC3\xA9x", false), (std::vector<int32_t>{1, 2, 3, 0}));
  EXPECT_EQ(bf->decode({1, 2, 3}, false), "a\xC3\xA9");
  EXPECT_EQ(bf->decode({2, 1}, false), kFFFD + "a");  // an invalid byte run: one U+FFFD per byte
  // The streaming decoder holds byte tokens until the run ends.
  StreamDecoder sd(*bf, false);
  EXPECT_EQ(sd.push(1), "a");
  EXPECT_EQ(sd.push(2), "");
  EXPECT_EQ(sd.push(3), "");
  EXPECT_EQ(sd.push(1), "\xC3\xA9" "a");
  EXPECT_EQ(sd.push(2), "");
  EXPECT_EQ(sd.flush(), kFFFD);
}

TEST(TokenizerDecoder, MetaspaceAndStrip) {
  auto t = Tokenizer::from_json(
      tokenizer_json(R"({"type": "BPE", "vocab": {"▁a": 0, "▁": 1, "b": 2, " x": 3}, "merges": []})",
                     R"("decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always"}, )"),
      "", "test");
  EXPECT_EQ(t->decode({0, 0, 2}, false), "a ab");
  EXPECT_EQ(t->decode({1, 1, 2}, false), " b");  // HF drops every replacement char of the first token
  auto s = Tokenizer::from_json(
      tokenizer_json(R"({"type": "BPE", "vocab": {"a": 0, " ": 1}, "merges": []})",
                     R"("decoder": {"type": "Sequence", "decoders": [{"type": "Fuse"},
                          {"type": "Strip", "content": " ", "start": 1, "stop": 2}]}, )"),
      "", "test");
  EXPECT_EQ(s->decode({1, 1, 0, 1, 1, 1}, false), " a ");
  StreamDecoder sd(*s, false);
  std::string out;
  for (int id : {1, 1, 0, 1, 1, 1}) out += sd.push(id);
  EXPECT_EQ(out + sd.flush(), " a ");
}

TEST(TokenizerStream, ByteLevelCharacterSplitOverTokens) {
  auto tok = Tokenizer::from_dir(MMFP4_SHARED_DIR "/fixtures/tokenizers/tiny");
  std::vector<int32_t> ids = tok->encode("\xF0\x9F\x98\x80!", false);  // an emoji the vocabulary splits into bytes
  ASSERT_GE(ids.size(), 3u);
  StreamDecoder sd(*tok, false);
  std::vector<std::string> parts;
  for (int32_t id : ids) parts.push_back(sd.push(id));
  EXPECT_EQ(parts[0], "");  // never half a character
  std::string all;
  for (auto& p : parts) all += p;
  EXPECT_EQ(all + sd.flush(), "\xF0\x9F\x98\x80!");
  // An incomplete character at the end is flushed as U+FFFD.
  StreamDecoder cut(*tok, false);
  EXPECT_EQ(cut.push(ids[0]), "");
  EXPECT_EQ(cut.flush(), kFFFD);
  EXPECT_EQ(tok->decode({ids[0]}, false), kFFFD);
  // Skipped specials produce nothing; bad ids are errors.
  StreamDecoder skip(*tok, true);
  EXPECT_EQ(skip.push(0), "");
  EXPECT_THROW(skip.push(-5), Error);
  EXPECT_THROW(skip.push(tok->vocab_size()), Error);
  EXPECT_THROW(tok->decode({1 << 30}, false), Error);
}

TEST(TokenizerEncode, RejectsInvalidUtf8) {
  auto tok = Tokenizer::from_dir(MMFP4_SHARED_DIR "/fixtures/tokenizers/tiny");
  EXPECT_TRUE(tok->encode("", true).empty());
  try {
    tok->encode("ok\xFF", false);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("byte 2"), std::string::npos) << e.what();
  }
}

TEST(TokenizerUnicode, CharacterClasses) {
  EXPECT_TRUE(unicode::is_whitespace(0x3000));
  EXPECT_FALSE(unicode::is_whitespace(0x180E));
  EXPECT_TRUE(unicode::is_numeric(0xB2));     // superscript two (No)
  EXPECT_TRUE(unicode::is_punctuation('$'));  // ASCII punctuation includes symbols
  EXPECT_FALSE(unicode::is_punctuation(0x20AC));
  EXPECT_TRUE(unicode::is_word(0x301));
  EXPECT_TRUE(unicode::is_word('_'));
  EXPECT_FALSE(unicode::is_word('-'));
  // Where ICU 72 and the Rust tables disagree, the Rust answer (values from Hugging Face's library).
  EXPECT_FALSE(unicode::is_punctuation(0x61D));  // Unicode 14 punctuation, unknown to the unicode_categories crate
  EXPECT_TRUE(unicode::is_word(0x1C89));         // a Unicode 16 letter
  EXPECT_TRUE(unicode::is_numeric(0x10D40));     // a Unicode 16 digit
  EXPECT_FALSE(unicode::is_combining_mark(0x898));
  EXPECT_EQ(unicode::lowercase("\xEA\x9F\x8B"), "\xC9\xA4");  // U+A7CB -> U+0264 (Unicode 16)
  // Normalization leaves characters newer than Unicode 11 alone, as the Rust crate does.
  EXPECT_EQ(unicode::normalize("\xF0\x9E\x80\xB0", unicode::NormForm::NFKC), "\xF0\x9E\x80\xB0");  // U+1E030
  EXPECT_EQ(unicode::normalize("\xE2\x91\xA0", unicode::NormForm::NFKC), "1");
}
