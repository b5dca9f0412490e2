#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/utf8.h"

namespace mmfp4::byte_level {

namespace {

struct Tables {
  std::array<uint32_t, 256> chars{};
  std::array<char, 256 * 2> utf8{};  // every character of the alphabet takes 1 or 2 UTF-8 bytes
  std::array<uint8_t, 256> utf8_len{};
  std::array<int16_t, 0x144> bytes{};
  Tables() {
    bytes.fill(-1);
    // Bytes that are printable on their own keep their code point; the rest are numbered from U+0100 upwards in
    // byte order.
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      chars[b] = printable ? uint32_t(b) : next++;
      bytes[chars[b]] = int16_t(b);
      std::string s = utf8::encode(chars[b]);
      utf8_len[b] = uint8_t(s.size());
      for (size_t k = 0; k < s.size(); ++k) utf8[b * 2 + k] = s[k];
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

uint32_t char_of(uint8_t b) { return tables().chars[b]; }

std::string_view utf8_of(uint8_t b) {
  const Tables& t = tables();
  return std::string_view(&t.utf8[b * 2], t.utf8_len[b]);
}

int byte_of(uint32_t cp) { return cp < 0x144 ? tables().bytes[cp] : -1; }

void map_bytes(std::string_view raw, std::string& out) {
  const Tables& t = tables();
  for (char c : raw) {
    uint8_t b = uint8_t(c);
    out.append(&t.utf8[b * 2], t.utf8_len[b]);
  }
}

}  // namespace mmfp4::byte_level
