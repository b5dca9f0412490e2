// Hand-made bad safetensors files and model folders: each must fail with its own clear error naming the file, and
// nothing may crash (this test also runs under ASan + UBSan).
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "format/checkpoint.h"
#include "format/safetensors.h"
#include "test_util.h"

using namespace mmfp4;
using mmfp4::test::safetensors_bytes;

namespace {

struct BadCase {
  const char* name;
  std::vector<std::pair<std::string, std::string>> files;  // relative path -> bytes
  std::string open;    // a file to open with SafetensorsFile::open, or "" / a folder for Checkpoint::open
  std::string expect;  // a substring of the error message, different for every case
};

std::string st(const std::string& header, size_t data) { return safetensors_bytes(header, data); }

// One valid F32 [2] tensor named `name`.
std::string one(const std::string& name) {
  return st("{\"" + name + "\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
}

std::string index(const std::string& weight_map) { return "{\"metadata\":{},\"weight_map\":" + weight_map + "}"; }

const std::string kF = "x.safetensors";
const std::string kIdx = "model.safetensors.index.json";

std::vector<BadCase> cases() {
  const std::string good = one("a");
  std::string truncated = good.substr(0, good.size() - 3);
  return {
      // ---- the 8-byte length and the header text
      {"empty file", {{kF, ""}}, kF, "file is 0 bytes, too short"},
      {"shorter than the length field", {{kF, "abcde"}}, kF, "file is 5 bytes, too short"},
      {"header length past the end", {{kF, safetensors_bytes("{}", 0, 1000)}}, kF,
       "header length 1000 runs past the end of the file"},
      {"header length absurd", {{kF, safetensors_bytes("{}", 0, 1ull << 62)}}, kF, "exceeds the limit"},
      {"header length zero", {{kF, safetensors_bytes("", 16)}}, kF, "header length 0 is too small for a JSON object"},
      {"header not JSON", {{kF, st("{not json}", 0)}}, kF, "header is not valid JSON: header: JSON parse error at line 1, column 2"},
      {"header with trailing garbage", {{kF, st("{} xyz", 0)}}, kF, "unexpected text after the JSON value"},
      {"header not an object", {{kF, st("[1, 2]", 0)}}, kF, "header is a JSON array, expected an object"},
      {"header is a string", {{kF, st("\"abc\"", 0)}}, kF, "header is a JSON string, expected an object"},
      {"header nested too deep", {{kF, st(std::string(2000, '[') + std::string(2000, ']'), 0)}}, kF, "nesting too deep"},
      // ---- one entry
      {"entry not an object", {{kF, st("{\"a\": 3}", 0)}}, kF, "tensor 'a': header entry is a JSON integer"},
      {"dtype missing", {{kF, st("{\"nodt\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4)}}, kF,
       "tensor 'nodt': header entry has no 'dtype'"},
      {"dtype not a string", {{kF, st("{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4)}}, kF,
       "'dtype' is a JSON integer"},
      {"unknown dtype", {{kF, st("{\"a\":{\"dtype\":\"F17\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4)}}, kF,
       "unknown dtype 'F17'"},
      {"lower-case dtype", {{kF, st("{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4)}}, kF,
       "unknown dtype 'f32'"},
      {"shape missing", {{kF, st("{\"nosh\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4)}}, kF,
       "tensor 'nosh': header entry has no 'shape'"},
      {"shape not an array", {{kF, st("{\"a\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", 8)}}, kF,
       "'shape' is a JSON string"},
      {"shape of floats", {{kF, st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8)}}, kF,
       "'shape' holds a JSON number"},
      {"negative shape", {{kF, st("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2,-4],\"data_offsets\":[0,32]}}", 32)}}, kF,
       "negative dimension -2 in shape [-2, -4]"},
      {"negative shape with a zero",
       {{kF, st("{\"a\":{\"dtype\":\"F32\",\"shape\":[0,-4],\"data_offsets\":[0,0]}}", 0)}}, kF,
       "negative dimension -4"},
      {"shape product overflows",
       {{kF, st("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", 0)}}, kF,
       "shape [4294967296, 4294967296] overflows"},
      {"offsets missing", {{kF, st("{\"nooff\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4)}}, kF,
       "tensor 'nooff': header entry has no 'data_offsets'"},
      {"offsets as strings", {{kF, st("{\"str\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",\"4\"]}}", 4)}},
       kF, "tensor 'str': 'data_offsets' must be [begin, end]"},
      {"three offsets", {{kF, st("{\"three\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8)}}, kF,
       "tensor 'three': 'data_offsets' must be"},
      {"negative offset", {{kF, st("{\"neg\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4)}}, kF,
       "tensor 'neg': 'data_offsets' must be"},
      {"offset beyond int64",
       {{kF, st("{\"big\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[18446744073709551612,18446744073709551616]}}",
                4)}},
       kF, "tensor 'big': 'data_offsets' must be"},
      {"offsets as an object", {{kF, st("{\"obj\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{\"a\":1}}}", 4)}},
       kF, "tensor 'obj': 'data_offsets' must be"},
      {"end before begin", {{kF, st("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 8)}}, kF,
       "data_offsets [8, 4] end before they begin"},
      {"shape/size mismatch", {{kF, st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 24)}}, kF,
       "shape [2, 3] of F32 needs 24 bytes but data_offsets [0, 20] span 20"},
      {"range out of bounds", {{kF, st("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 16)}}, kF,
       "data_offsets [8, 24] run past the end of the data section (16 bytes)"},
      {"truncated file", {{kF, truncated}}, kF, "run past the end of the data section (5 bytes)"},
      {"overlapping ranges",
       {{kF, st("{\"p\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"q\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                12)}},
       kF, "tensors 'p' [0, 8) and 'q' [4, 12) overlap"},
      {"range inside another",
       {{kF, st("{\"big\":{\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[0,16]},"
                "\"s1\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]},"
                "\"s2\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[12,14]}}",
                16)}},
       kF, "'big' [0, 16) and 's1' [2, 4) overlap"},
      {"duplicate names",
       {{kF, st("{\"dup\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"dup\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                8)}},
       kF, "tensor name 'dup' appears twice"},
      {"duplicate names through an escape",
       {{kF, st("{\"esc\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"\\u0065sc\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                8)}},
       kF, "tensor name 'esc' appears twice"},
      {"metadata not an object", {{kF, st("{\"__metadata__\":[\"a\"]}", 0)}}, kF,
       "__metadata__ is a JSON array, expected an object of strings"},
      {"metadata not strings", {{kF, st("{\"__metadata__\":{\"format\":\"pt\",\"version\":2}}", 0)}}, kF,
       "'version' is a JSON integer"},
      {"a directory, not a file", {{"sub.safetensors/x.txt", "x"}}, "sub.safetensors", "not a regular file"},
      {"missing file", {{"other.txt", "x"}}, "none.safetensors", "none.safetensors: cannot open"},
      // ---- folders and indexes
      {"empty folder", {{"readme.txt", "hello"}}, "", "no model.safetensors, model.safetensors.index.json"},
      {"not a folder", {{"file.txt", "x"}}, "file.txt", "not a directory"},
      {"bad shard in a folder", {{"model.safetensors", st("{\"a\": 3}", 0)}}, "",
       "model.safetensors: tensor 'a': header entry is a JSON integer"},
      {"name in two files", {{"a.safetensors", one("w")}, {"b.safetensors", one("w")}}, "",
       "tensor 'w' is in both"},
      {"index JSON broken", {{kIdx, "{\"weight_map\": {"}, {"s.safetensors", good}}, "", "index is not valid JSON"},
      {"index not an object", {{kIdx, "[]"}, {"s.safetensors", good}}, "", "index is a JSON array"},
      {"index without weight_map", {{kIdx, "{\"metadata\": {}}"}, {"s.safetensors", good}}, "",
       "index has no 'weight_map' object"},
      {"index weight_map empty", {{kIdx, index("{}")}, {"s.safetensors", good}}, "", "weight_map is empty"},
      {"index metadata not an object", {{kIdx, "{\"metadata\": \"m\", \"weight_map\": {\"a\": \"s.safetensors\"}}"},
                                        {"s.safetensors", good}},
       "", "index 'metadata' is a JSON string"},
      {"index value not a string", {{kIdx, index("{\"a\": 1}")}, {"s.safetensors", good}}, "",
       "weight_map['a'] is a JSON integer, expected a file name"},
      {"index points to the parent", {{kIdx, index("{\"a\": \"../x.safetensors\"}")}, {"s.safetensors", good}}, "",
       "'../x.safetensors' is not a plain file name inside the model folder"},
      {"index points to an absolute path", {{kIdx, index("{\"a\": \"/etc/passwd\"}")}, {"s.safetensors", good}}, "",
       "'/etc/passwd' is not a plain file name"},
      {"index points into a subfolder", {{kIdx, index("{\"a\": \"a/b\"}")}, {"a/b", good}}, "",
       "'a/b' is not a plain file name"},
      {"index names dot-dot", {{kIdx, index("{\"a\": \"..\"}")}, {"s.safetensors", good}}, "",
       "'..' is not a plain file name"},
      {"index names a backslash path", {{kIdx, index("{\"a\": \"..\\\\x\"}")}, {"s.safetensors", good}}, "",
       "'..\\x' is not a plain file name"},
      {"index names an empty file name", {{kIdx, index("{\"a\": \"\"}")}, {"s.safetensors", good}}, "",
       "weight_map['a'] = '' is not a plain"},
      {"index names a missing shard",
       {{kIdx, index("{\"a\": \"s.safetensors\", \"b\": \"model-00002-of-00002.safetensors\"}")},
        {"s.safetensors", good}},
       "", "shard 'model-00002-of-00002.safetensors' (listed for tensor 'b') does not exist"},
      {"index names a tensor the shard lacks",
       {{kIdx, index("{\"a\": \"s.safetensors\", \"zz\": \"s.safetensors\"}")}, {"s.safetensors", good}}, "",
       "the index places tensor 'zz' in 's.safetensors', but"},
      {"index lists a tensor twice",
       {{kIdx, index("{\"a\": \"s.safetensors\", \"a\": \"t.safetensors\"}")}, {"s.safetensors", good},
        {"t.safetensors", good}},
       "", "weight_map lists tensor 'a' twice"},
      {"index shards share a name",
       {{kIdx, index("{\"a\": \"s1.safetensors\", \"b\": \"s2.safetensors\"}")},
        {"s1.safetensors", st("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                              "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                              8)},
        {"s2.safetensors", one("b")}},
       "", "s1.safetensors and "},
  };
}

class BadFiles : public ::testing::TestWithParam<size_t> {};

TEST(BadFilesTable, ExpectedMessagesAreDistinct) {
  std::set<std::string> seen;
  for (const BadCase& c : cases()) {
    EXPECT_TRUE(seen.insert(c.expect).second) << c.name << ": '" << c.expect << "' is not unique";
  }
}

TEST_P(BadFiles, FailsWithItsOwnMessage) {
  const BadCase c = cases()[GetParam()];
  SCOPED_TRACE(c.name);
  mmfp4::test::TempDir dir;
  for (const auto& [rel, bytes] : c.files) mmfp4::test::write_bytes(dir / rel, bytes);
  const std::string target = c.open.empty() ? dir.path() : dir / c.open;
  std::string message;
  try {
    if (c.open.ends_with(".safetensors")) {
      SafetensorsFile::open(target);
    } else {
      Checkpoint::open(target);
    }
  } catch (const Error& e) {
    message = e.what();
  }
  ASSERT_FALSE(message.empty()) << c.name << ": opened without an error";
  EXPECT_NE(message.find(c.expect), std::string::npos) << c.name << "\n  expected: " << c.expect
                                                       << "\n  got:      " << message;
  // Every message names the file or folder it is about.
  EXPECT_NE(message.find(dir.path()), std::string::npos) << message;
  // Other cases' messages must not match this one's (each failure is told apart from the others).
  for (const BadCase& d : cases()) {
    if (std::string(d.name) == c.name || c.expect.find(d.expect) != std::string::npos) continue;
    EXPECT_EQ(message.find(d.expect), std::string::npos) << c.name << " also matches '" << d.name << "': " << message;
  }
}

INSTANTIATE_TEST_SUITE_P(Table, BadFiles, ::testing::Range<size_t>(0, cases().size()),
                         [](const ::testing::TestParamInfo<size_t>& info) {
                           std::string n = cases()[info.param].name;
                           for (char& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

}  // namespace
