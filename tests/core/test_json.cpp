#include <gtest/gtest.h>

#include "core/error.h"
#include "core/json.h"

using namespace mmfp4;

TEST(Json, ParsesNestedValues) {
  auto v = json::parse(R"({"a": [1, 2.5, "x", true, null], "b": {"c": -3e2}, "u": "\u00e9\ud83d\ude00"})");
  ASSERT_TRUE(v.is_object());
  EXPECT_EQ(v["a"].size(), 5u);
  EXPECT_EQ(v["a"][0].as_int(), 1);
  EXPECT_DOUBLE_EQ(v["a"][1].as_double(), 2.5);
  EXPECT_EQ(v["a"][2].as_string(), "x");
  EXPECT_TRUE(v["a"][3].as_bool());
  EXPECT_TRUE(v["a"][4].is_null());
  EXPECT_DOUBLE_EQ(v["b"]["c"].as_double(), -300.0);
  EXPECT_EQ(v["u"].as_string(), "\xC3\xA9\xF0\x9F\x98\x80");
  EXPECT_TRUE(v["missing"].is_null());
}

TEST(Json, ErrorsNameLineAndColumn) {
  try {
    json::parse("{\n  \"a\": [1, 2,, 3]\n}", "config.json");
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("config.json"), std::string::npos) << m;
    EXPECT_NE(m.find("line 2"), std::string::npos) << m;
  }
}

TEST(Json, RejectsMalformedInput) {
  const char* bad[] = {"", "{", "[1,]", "{\"a\" 1}", "\"abc", "tru", "01", "1.", "-", "[1] x", "\"\\x\"",
                       "{\"a\":1,}", "\"\x01\"", "[\"\\u12\"]"};
  for (const char* s : bad) EXPECT_THROW(json::parse(s), Error) << s;
}

TEST(Json, DepthIsLimited) {
  std::string deep(100000, '[');
  EXPECT_THROW(json::parse(deep), Error);
}

TEST(Json, LargeObjectLookupAndDuplicates) {
  std::string s = "{";
  for (int i = 0; i < 1000; ++i) s += "\"k" + std::to_string(i) + "\": " + std::to_string(i) + ",";
  s += "\"k5\": 55}";
  auto v = json::parse(s);
  EXPECT_EQ(v.size(), 1000u);
  EXPECT_EQ(v["k999"].as_int(), 999);
  EXPECT_EQ(v["k5"].as_int(), 55);  // last value wins, first position kept
  EXPECT_EQ(v.as_object().members()[5].first, "k5");
}

TEST(Json, DumpRoundTripsAndMatchesPython) {
  auto v = json::parse(R"({"b": 1, "a": [1.0, 1e-05, 0.1, "é\n"], "c": null})");
  EXPECT_EQ(json::dump(v), R"({"b":1,"a":[1,1e-05,0.1,"é\n"],"c":null})");
  EXPECT_EQ(json::dump_python(v, false), R"({"b": 1, "a": [1.0, 1e-05, 0.1, "é\n"], "c": null})");
  EXPECT_EQ(json::dump_python(v, true, -1, true), R"({"a": [1.0, 1e-05, 0.1, "\u00e9\n"], "b": 1, "c": null})");
  EXPECT_EQ(json::dump_python(json::parse("[1, [2]]"), false, 2), "[\n  1,\n  [\n    2\n  ]\n]");
  EXPECT_EQ(json::parse(json::dump(v)), v);
  EXPECT_EQ(json::format_double(1e16, true), "1e+16");
  EXPECT_EQ(json::format_double(123456.0, true), "123456.0");
  EXPECT_EQ(json::format_double(0.0001, true), "0.0001");
}
