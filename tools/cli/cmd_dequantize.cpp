// mmfp4 dequantize SRC DST: an MMFP4 folder -> a dense F32 or BF16 safetensors folder (rotation undone, padding
// dropped), readable by any framework.
#include <cstdio>
#include <map>
#include <optional>

#include "args.h"
#include "command.h"
#include "core/error.h"
#include "core/log.h"
#include "core/mapped_file.h"
#include "format/dequantize_model.h"
#include "model/config.h"
#include "model/manifest.h"

namespace mmfp4::cli {
namespace {

int run_dequantize(const std::vector<std::string>& argv) {
  Args a("dequantize", "mmfp4 dequantize SRC DST [--dtype f32|bf16] [--force]");
  a.positional("SRC", "MMFP4 model folder");
  a.positional("DST", "output folder for the dense checkpoint");
  a.option("", "--dtype", "T", "f32 or bf16: the dtype of every floating-point tensor written", "f32");
  a.flag("--force", "write into a non-empty DST (its old weight files are removed)");
  if (!a.parse(argv)) return 0;
  const std::string src = a.pos("SRC"), dst = a.pos("DST"), dt = a.get("--dtype");
  DequantizeModelOptions opt;
  if (dt == "f32")
    opt.dtype = DType::F32;
  else if (dt == "bf16")
    opt.dtype = DType::BF16;
  else
    fail("--dtype: expected f32 or bf16, got '", dt, "'");
  opt.force = a.get_flag("--force");

  // The logical shapes come from config.json: a rotated weight may be stored padded to the Hadamard block.
  std::map<std::string, std::pair<int64_t, int64_t>> shapes;
  if (file_exists(src + "/config.json")) {
    for (const TensorSpec& s : expected_tensors(ModelConfig::load(src)))
      if (s.role != TensorRole::Vector) shapes[s.name] = {s.shape[0], s.shape[1]};
  } else {
    log_warn(src, ": no config.json; rotated weights keep their stored (possibly padded) width");
  }
  opt.logical_shape = [&](const std::string& name, int64_t& n, int64_t& k) {
    auto it = shapes.find(name);
    if (it == shapes.end()) return false;
    n = it->second.first, k = it->second.second;
    return true;
  };
  std::optional<Progress> bar;
  opt.progress = [&](int64_t done, int64_t total, const std::string& name) {
    if (!bar) bar.emplace("dequantize", total);
    bar->update(done, name);
  };
  const DequantizeModelReport r = dequantize_model(src, dst, opt);
  if (bar) bar->finish();
  std::printf("dequantized %lld MMFP4 weights to %s, converted %lld other floating-point tensors, copied %lld; "
              "%zu file(s) written to %s\n",
              static_cast<long long>(r.dequantized), dt.c_str(), static_cast<long long>(r.converted),
              static_cast<long long>(r.copied), r.shards.size(), dst.c_str());
  return 0;
}

}  // namespace

MMFP4_COMMAND("dequantize", "expand an MMFP4 model folder to dense F32/BF16 safetensors", run_dequantize);

}  // namespace mmfp4::cli
