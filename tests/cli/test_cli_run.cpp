// The model-running subcommands as a user runs them: generate (text, --json, --prompt-ids, --chat), chat over
// stdin with two turns, perplexity, and the errors a user can cause (bad folder, bad ids, bad options), each a
// non-zero exit with a message that names the problem, never a crash.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include "common/cli_runner.h"
#include "common/temp_dir.h"
#include "core/json.h"
#include "core/mapped_file.h"

namespace mmfp4 {
namespace {

using test::mmfp4;
const std::string kModel = std::string(MMFP4_SOURCE_DIR) + "/models/tiny-glm4-moe-lite-mmfp4";
const std::string kQwen = std::string(MMFP4_SHARED_DIR) + "/models/tiny-qwen3-mmfp4";

json::Value last_json_line(const std::string& out) {
  size_t end = out.find_last_not_of('\n');
  size_t start = out.rfind('\n', end);
  return json::parse(out.substr(start == std::string::npos ? 0 : start + 1, end + 1), "generate --json");
}

TEST(CliRun, GenerateJsonMatchesTheReferenceGreedyContinuation) {
  // tiny-qwen3-mmfp4's first reference case: greedy ids with the cache, computed by transformers.
  auto r = mmfp4("generate --device cpu -m " + kQwen + " -p 'The quick brown fox' -n 32 --ignore-eos --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  json::Value j = last_json_line(r.out);
  std::vector<int64_t> ids;
  for (const auto& v : j["generated_ids"].as_array()) ids.push_back(v.as_int());
  json::Value ref = json::parse(read_file(kQwen + "/reference/cases.json"))["cases"][0];
  ASSERT_EQ(ref["prompt"].as_string(), "The quick brown fox");
  std::vector<int64_t> want;
  for (const auto& v : ref["greedy_ids"].as_array()) want.push_back(v.as_int());
  // The reference runs past EOS (id 0); --ignore-eos makes ours do the same.
  EXPECT_EQ(ids, want);
  EXPECT_EQ(j["finish_reason"].as_string(), "length");
  EXPECT_EQ(j["prompt_ids"].size(), 6u);
  EXPECT_GT(j["timings"]["decode_tokens_per_s"].as_double(), 0);
  // The streamed text is the JSON text.
  EXPECT_EQ(r.out.substr(0, j["text"].as_string().size()), j["text"].as_string());
}

TEST(CliRun, GenerateFromIdsChatTemplateAndStops) {
  auto r = mmfp4("generate --device cpu -m " + kModel + " --prompt-ids 484,4464,3843,80,731,90 -n 8 --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(last_json_line(r.out)["prompt_ids"].size(), 6u);
  r = mmfp4("generate --device cpu -m " + kModel + " -p 'Hello' --chat -n 8 --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_GT(last_json_line(r.out)["prompt_ids"].size(), 3u);  // the template's markers were added
  r = mmfp4("generate --device cpu -m " + kModel + " -p 'The' -n 40 --temp 0.8 --seed 7 --json");
  auto r2 = mmfp4("generate --device cpu -m " + kModel + " -p 'The' -n 40 --temp 0.8 --seed 7 --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(last_json_line(r.out)["generated_ids"], last_json_line(r2.out)["generated_ids"]);
}

TEST(CliRun, ChatKeepsTheConversationAndItsCache) {
  const std::string in = "Tell me about Debian.\nAnd about Python?\n/exit\n";
  auto r = mmfp4("chat --device cpu -m " + kModel + " -n 16", &in);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_GT(r.out.size(), 4u);
}

TEST(CliRun, PerplexityScoresFullWindows) {
  test::TempDir d;
  const std::string f = d / "text.txt";
  std::ofstream(f) << "The Debian project is an association of individuals who have made common cause to create a "
                      "free operating system. This operating system is called Debian. Python is a programming "
                      "language that lets you work quickly and integrate systems more effectively. "
                      "The quick brown fox jumps over the lazy dog, again and again and again.";
  auto r = mmfp4("perplexity --device cpu -m " + kModel + " -f " + f + " --ctx 16");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("perplexity: "), std::string::npos) << r.out;
  const double ppl = std::stod(r.out.substr(r.out.find("perplexity: ") + 12));
  EXPECT_GT(ppl, 1.0);
  EXPECT_LT(ppl, 8192.0);
  EXPECT_NE(r.out.find("tokens scored: "), std::string::npos);
  // Scored tokens = windows x (ctx - 1).
  auto j = mmfp4("perplexity --device cpu -m " + kModel + " -f " + f + " --ctx 16 --json");
  json::Value v = json::parse(j.out);
  EXPECT_EQ(v["tokens_scored"].as_int(), v["windows"].as_int() * 15);
  auto small = mmfp4("perplexity --device cpu -m " + kModel + " -f " + f + " --ctx 100000");
  EXPECT_NE(small.rc, 0);
}

// `mmfp4 bench` names the commit its binary was built from (stamped at build time), so a result copied from another
// machine still says which sources produced it.
TEST(CliRun, BenchNamesTheCommitItWasBuiltFrom) {
  auto r = mmfp4("bench --device cpu -m " + kModel + " -p 8 -n 4 -b 1 -r 1 --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  const std::string c = json::parse(r.out, "bench --json")["commit"].as_string();
  EXPECT_TRUE(std::regex_match(c, std::regex("[0-9a-f]{12}(\\+dirty)?|unknown"))) << c;
}

TEST(CliRun, UserErrorsAreMessagesNotCrashes) {
  struct Case {
    std::string args, want;
  };
  const Case cases[] = {
      {"generate -m /nonexistent -p hi", "/nonexistent"},
      {"generate --device cpu -m " + kModel + " --prompt-ids 1,99999", "outside the vocabulary"},
      {"generate --device cpu -m " + kModel + " --prompt-ids 1,x", "not an integer"},
      {"generate --device cpu -m " + kModel + " -p hi --temp -1", "temperature"},
      {"generate --device cpu -m " + kModel + " -p hi -n 100000", "exceeds the context"},
      {"generate --device cpu -m " + kModel + " -p hi --bogus", "unknown option"},
      {"generate --device tpu -m " + kModel + " -p hi", "unknown device"},
      {"generate --device cpu -m " + kModel, "exactly one of"},
      {"frobnicate", "unknown command"},
  };
  for (const Case& c : cases) {
    auto r = mmfp4(c.args);
    EXPECT_NE(r.rc, 0) << c.args;
    EXPECT_LT(r.rc, 128) << c.args << " (killed by a signal)";
    EXPECT_NE(r.err.find(c.want), std::string::npos) << c.args << "\n" << r.err;
  }
}

// A set but malformed MMFP4_* variable stops the command with its name and value (core/env.h); MMFP4_LOG, read before
// anything can report an error, warns and keeps the default level.
TEST(CliRun, MalformedEnvironmentVariablesAreNamed) {
  struct Case {
    const char *var, *value;
  };
  const std::string run = "generate --device cpu -m " + kModel + " -p hi -n 2";
  for (const Case& c : {Case{"MMFP4_THREADS", "four"}, Case{"MMFP4_THREADS", "0"}, Case{"MMFP4_CHECK", "maybe"},
                        Case{"MMFP4_CPU_REF", "2"}, Case{"MMFP4_FUSE_LINEARS", "nope"}}) {
    setenv(c.var, c.value, 1);
    auto r = mmfp4(run);
    unsetenv(c.var);
    EXPECT_NE(r.rc, 0) << c.var;
    EXPECT_LT(r.rc, 128) << c.var << " (killed by a signal)";
    EXPECT_NE(r.err.find(std::string(c.var) + "='" + c.value + "'"), std::string::npos) << r.err;
  }
  setenv("MMFP4_LOG", "verbose", 1);
  auto r = mmfp4(run);
  unsetenv("MMFP4_LOG");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("MMFP4_LOG='verbose'"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace mmfp4
