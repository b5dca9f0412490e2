// mmfp4 perplexity: exp(mean negative log-likelihood) over full, non-overlapping windows of --ctx tokens of a text
// file. Every token after a window's first is scored; a trailing partial window is not. The text is tokenized as
// the tokenizer does by default (special tokens only where its post-processor adds them).
#include <cmath>
#include <cstdio>

#include "args.h"
#include "backend/backend.h"
#include "command.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "engine_options.h"
#include "kv/kv_cache.h"
#include "model/model.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

namespace mmfp4::cli {
namespace {

int run_perplexity(const std::vector<std::string>& argv) {
  Args a("perplexity", "mmfp4 perplexity -m DIR -f FILE [--ctx N]");
  add_engine_options(a);
  a.option("-f", "--file", "FILE", "text file to score");
  a.option("-b", "--batch", "N", "tokens per forward step", "512");
  a.flag("--json", "print the result as one JSON object");
  if (!a.parse(argv)) return 0;
  const EngineOptions eo = engine_options(a);
  const std::string text = read_file(a.require("--file"));
  auto tok = Tokenizer::from_dir(eo.model_dir);
  const std::vector<int32_t> ids = tok->encode(text, true);

  auto be = make_backend(eo.device, eo.threads);
  ModelOptions mo;
  mo.max_tokens = a.get_int("--batch", 512);
  mo.check = eo.check;
  mo.verbose = eo.verbose;
  const int64_t ctx = eo.max_context > 0 ? eo.max_context : 512;
  mo.max_context = ctx;
  auto model = Model::load(eo.model_dir, *be, mo);
  const int64_t V = model->vocab_size();
  if (ctx < 2) fail("--ctx must be at least 2");
  const int64_t windows = int64_t(ids.size()) / ctx;
  if (windows == 0)
    fail(a.get("--file"), ": ", ids.size(), " tokens is less than one window of ", ctx, " (use a smaller --ctx)");
  KVCache kv(*be, model->config(), (ctx + mo.kv_block_size - 1) / mo.kv_block_size, mo.kv_block_size);
  std::vector<float> logits(size_t(mo.max_tokens * V));
  double nll = 0;
  int64_t scored = 0;
  Progress bar("perplexity", windows);
  for (int64_t w = 0; w < windows; ++w) {
    const int32_t* win = ids.data() + w * ctx;
    SeqCache sc;
    sc.reserve(kv, ctx);
    for (int64_t c0 = 0; c0 < ctx; c0 += mo.max_tokens) {
      const int64_t c1 = std::min(ctx, c0 + mo.max_tokens);
      Batch b;
      b.seqs.push_back(&sc);
      for (int64_t i = c0; i < c1; ++i) b.add(win[i], int32_t(i), 0, i + 1 < ctx);
      model->forward(b, kv, logits.data());
      for (int64_t i = c0; i < c1 && i + 1 < ctx; ++i) {
        nll -= log_softmax_at(logits.data() + (i - c0) * V, V, win[i + 1]);
        ++scored;
      }
    }
    sc.clear(kv);
    bar.update(w + 1, cat("ppl ", std::exp(nll / double(scored))));
  }
  bar.finish();
  const double ppl = std::exp(nll / double(scored));
  if (a.get_flag("--json"))
    std::printf("{\"perplexity\": %.6f, \"tokens_scored\": %lld, \"windows\": %lld, \"ctx\": %lld}\n", ppl,
                (long long)scored, (long long)windows, (long long)ctx);
  else
    std::printf("perplexity: %.4f\ntokens scored: %lld (%lld windows of %lld tokens)\n", ppl, (long long)scored,
                (long long)windows, (long long)ctx);
  return 0;
}

}  // namespace
MMFP4_COMMAND("perplexity", "perplexity of a text file over non-overlapping windows", run_perplexity);
}  // namespace mmfp4::cli
