#include "engine_options.h"

#include <chrono>

#include "core/error.h"
#include "core/log.h"

namespace mmfp4::cli {

void add_engine_options(Args& a) {
  a.option("-m", "--model", "DIR", "model folder (Hugging Face layout, MMFP4 or BF16/F16/F32 weights)");
  a.option("", "--device", "DEV", "cpu, cuda or auto (CUDA when a GPU is present)", "auto");
  a.option("-t", "--threads", "N", "CPU threads (default: all cores)", "0");
  a.option("", "--ctx", "N", "context length per sequence (default: min(model maximum, 4096))", "0");
  a.flag("--check", "check every op's output for NaN/Inf and stop at the first one (also MMFP4_CHECK=1)");
  a.flag("--verbose", "log every op with its shapes and time (also MMFP4_LOG=debug)");
}

EngineOptions engine_options(const Args& a) {
  EngineOptions o;
  o.model_dir = a.require("--model");
  o.device = a.get("--device");
  o.threads = int(a.get_int("--threads", 0));
  o.max_context = a.get_int("--ctx", 0);
  o.check = a.get_flag("--check");
  o.verbose = a.get_flag("--verbose");
  if (o.verbose) set_log_level(LogLevel::Debug);
  if (o.threads < 0) fail("--threads must not be negative");
  if (o.max_context < 0) fail("--ctx must not be negative");
  return o;
}

void add_sampling_options(Args& a) {
  a.option("", "--temp", "T", "temperature; 0 = greedy (default: the model's generation_config.json, else greedy)");
  a.option("", "--top-k", "K", "keep the K most likely tokens (0 = off)");
  a.option("", "--top-p", "P", "nucleus sampling: keep the smallest set with probability >= P (1 = off)");
  a.option("", "--min-p", "P", "drop tokens less likely than P x the most likely one (0 = off)");
  a.option("", "--repeat-penalty", "R", "repetition penalty (1 = off)");
  a.option("", "--presence-penalty", "X", "OpenAI presence penalty (0 = off)");
  a.option("", "--frequency-penalty", "X", "OpenAI frequency penalty (0 = off)");
  a.option("", "--seed", "S", "random seed (default: from the clock, printed with --json)");
}

SamplingParams sampling_options(const Args& a, const SamplingParams& defaults) {
  SamplingParams p = defaults;
  if (a.has("--temp")) p.temperature = float(a.get_double("--temp", 0));
  if (a.has("--top-k")) p.top_k = int32_t(a.get_int("--top-k", 0));
  if (a.has("--top-p")) p.top_p = float(a.get_double("--top-p", 1));
  if (a.has("--min-p")) p.min_p = float(a.get_double("--min-p", 0));
  if (a.has("--repeat-penalty")) p.repetition_penalty = float(a.get_double("--repeat-penalty", 1));
  if (a.has("--presence-penalty")) p.presence_penalty = float(a.get_double("--presence-penalty", 0));
  if (a.has("--frequency-penalty")) p.frequency_penalty = float(a.get_double("--frequency-penalty", 0));
  p.seed = a.has("--seed") ? uint64_t(a.get_int("--seed", 0))
                           : uint64_t(std::chrono::system_clock::now().time_since_epoch().count());
  p.validate();
  return p;
}

}  // namespace mmfp4::cli
