// mmfp4 synth: write a random-weight MMFP4 checkpoint of a real architecture, to measure speed and memory at the
// real size without downloading weights.
#include <cstdio>

#include "args.h"
#include "command.h"
#include "core/error.h"
#include "core/log.h"
#include "core/mapped_file.h"
#include "model/synth.h"

namespace mmfp4::cli {
namespace {

int run_synth(const std::vector<std::string>& argv) {
  Args a("synth", "mmfp4 synth (--like NAME | --config FILE) DST [options]");
  a.positional("DST", "output folder");
  a.option("", "--like", "NAME", "a known model's configuration: glm-4.7-flash");
  a.option("", "--config", "FILE", "a Hugging Face config.json to use instead");
  a.option("", "--layers", "N", "keep only the first N decoder layers", "0");
  a.option("", "--group-size", "G", "inputs per scale", "128");
  a.option("", "--hadamard", "B", "mark weights as Hadamard-rotated with block B (0: no rotation)", "0");
  a.option("", "--seed", "S", "random seed", "1");
  a.option("", "--shard-size", "BYTES", "approximate shard size", "4000000000");
  a.flag("--force", "write into a non-empty destination folder");
  if (!a.parse(argv)) return 0;
  if (a.has("--like") == a.has("--config")) fail("give exactly one of --like NAME or --config FILE");
  json::Value config = a.has("--like") ? builtin_config(a.get("--like"))
                                       : json::parse(read_file(a.get("--config")), a.get("--config"));
  SynthOptions o;
  o.layers = a.get_int("--layers", 0);
  o.group_size = int(a.get_int("--group-size", 128));
  o.hadamard_block = int(a.get_int("--hadamard", 0));
  o.seed = uint64_t(a.get_int("--seed", 1));
  o.shard_bytes = a.get_int("--shard-size", 4000000000);
  o.force = a.get_flag("--force");
  if (o.group_size <= 0 || o.group_size % 8) fail("--group-size must be a positive multiple of 8");
  if (o.hadamard_block < 0 || (o.hadamard_block & (o.hadamard_block - 1))) fail("--hadamard must be a power of two");
  Progress bar("synth", 100);
  const double t0 = now_seconds();
  const int64_t bytes = synthesize_checkpoint(config, a.pos("DST"), o, [&](int64_t done, int64_t total) {
    bar.update(total > 0 ? done * 100 / total : 100, cat(done / 1000000, " MB"));
  });
  bar.finish();
  std::printf("wrote %s: %.2f GB of weights in %.1f s\n", a.pos("DST").c_str(), double(bytes) / 1e9,
              now_seconds() - t0);
  return 0;
}

}  // namespace
MMFP4_COMMAND("synth", "write a random-weight MMFP4 checkpoint of a real architecture (speed/memory testing)",
              run_synth);
}  // namespace mmfp4::cli
