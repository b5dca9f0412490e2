// Prints ICU's answer to each character test of src/tokenizer/unicode.cpp, before the corrections of
// unicode_char_delta.inc: "cp numeric punct space word mark [lowercase code points]". Built and run by
// gen_unicode_delta.py.
#include <unicode/uchar.h>
#include <unicode/ustring.h>

#include <cstdio>

int main() {
  for (UChar32 c = 1; c < 0x110000; ++c) {
    if (c >= 0xD800 && c < 0xE000) continue;
    uint32_t gc = U_GET_GC_MASK(c);
    bool ascii_punct = c < 0x80 && ((c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E));
    bool word = (gc & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) || u_hasBinaryProperty(c, UCHAR_ALPHABETIC) ||
                u_hasBinaryProperty(c, UCHAR_JOIN_CONTROL);
    std::printf("%d %d %d %d %d %d", c, (gc & U_GC_N_MASK) != 0, ascii_punct || (gc & U_GC_P_MASK) != 0,
                u_hasBinaryProperty(c, UCHAR_WHITE_SPACE) != 0, word ? 1 : 0, (gc & U_GC_M_MASK) != 0);
    UChar src[2], dst[8];
    int32_t n = 0;
    U16_APPEND_UNSAFE(src, n, c);
    UErrorCode err = U_ZERO_ERROR;
    int32_t m = u_strToLower(dst, 8, src, n, "", &err);
    if (!(m == n && src[0] == dst[0] && (n == 1 || src[1] == dst[1])))
      for (int32_t k = 0; k < m;) {
        UChar32 x;
        U16_NEXT(dst, k, m, x);
        std::printf(" %d", x);
      }
    std::printf("\n");
  }
}
