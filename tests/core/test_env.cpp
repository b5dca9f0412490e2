#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "core/env.h"
#include "core/error.h"

using namespace mmfp4;

namespace {

// The variable set to `v` (nullptr: unset) for one test, restored after it.
class EnvVar {
 public:
  EnvVar(const char* name, const char* v) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    v ? setenv(name, v, 1) : unsetenv(name);
  }
  ~EnvVar() { had_ ? setenv(name_, old_.c_str(), 1) : unsetenv(name_); }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

// The message of the Error that f throws ("" when it throws none).
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

constexpr const char* kVar = "MMFP4_TEST_ENV_VALUE";

}  // namespace

TEST(Env, UnsetAndEmptyAreNotGiven) {
  for (const char* v : {static_cast<const char*>(nullptr), ""}) {
    EnvVar e(kVar, v);
    EXPECT_FALSE(env_bool(kVar).has_value());
    EXPECT_FALSE(env_int(kVar, 0, 9).has_value());
    EXPECT_FALSE(env_choice(kVar, {"a", "b"}).has_value());
  }
}

TEST(Env, BoolAcceptsTheUsualSpellings) {
  for (const char* v : {"1", "true", "TRUE", "on", "Yes"}) {
    EnvVar e(kVar, v);
    EXPECT_EQ(env_bool(kVar), std::optional<bool>(true)) << v;
  }
  for (const char* v : {"0", "false", "Off", "no"}) {
    EnvVar e(kVar, v);
    EXPECT_EQ(env_bool(kVar), std::optional<bool>(false)) << v;
  }
}

TEST(Env, IntWithinItsRange) {
  EnvVar e(kVar, "12");
  EXPECT_EQ(env_int(kVar, 1, 64), std::optional<int64_t>(12));
  EXPECT_EQ(env_int(kVar, 12, 12), std::optional<int64_t>(12));
  EnvVar n(kVar, "-3");
  EXPECT_EQ(env_int(kVar, -5, 5), std::optional<int64_t>(-3));
}

TEST(Env, ChoiceReturnsTheValue) {
  EnvVar e(kVar, "bf16");
  EXPECT_EQ(env_choice(kVar, {"f32", "bf16"}), std::optional<std::string>("bf16"));
}

TEST(Env, MalformedValuesAreErrorsNamingVariableAndValue) {
  struct Case {
    const char* value;
    int kind;  // 0 bool, 1 int in 1..64, 2 choice of f32/bf16
    const char* expect;
  };
  for (const Case& c : {Case{"2", 0, "expected 0 or 1"}, Case{"yes please", 0, "expected 0 or 1"},
                        Case{"four", 1, "expected an integer in 1..64"}, Case{"8x", 1, "expected an integer in 1..64"},
                        Case{"0", 1, "expected an integer in 1..64"}, Case{"65", 1, "expected an integer in 1..64"},
                        Case{"99999999999999999999", 1, "expected an integer in 1..64"},
                        Case{"BF16", 2, "expected one of f32, bf16"}, Case{" bf16", 2, "expected one of f32, bf16"}}) {
    EnvVar e(kVar, c.value);
    const std::string msg = error_of([&] {
      if (c.kind == 0) env_bool(kVar);
      else if (c.kind == 1) env_int(kVar, 1, 64);
      else env_choice(kVar, {"f32", "bf16"});
    });
    EXPECT_NE(msg.find(kVar), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::string("'") + c.value + "'"), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.expect), std::string::npos) << msg;
  }
}
