// mmfp4 quantize SRC DST: a Hugging Face safetensors folder -> an MMFP4 folder (docs/format.md).
#include <cstdio>
#include <optional>

#include "args.h"
#include "command.h"
#include "core/error.h"
#include "core/log.h"
#include "format/quantize_model.h"

namespace mmfp4::cli {
namespace {

int run_quantize(const std::vector<std::string>& argv) {
  Args a("quantize", "mmfp4 quantize SRC DST [--group-size 128] [--hadamard 64] [--force]");
  a.positional("SRC", "Hugging Face model folder (safetensors, BF16/F16/F32, sharded or not)");
  a.positional("DST", "output folder for the MMFP4 checkpoint");
  a.option("", "--group-size", "G", "inputs per F16 scale (a multiple of 8)", "128");
  a.option("", "--hadamard", "B", "rotate weights block-wise with a B-point Hadamard transform first (e.g. 64); "
           "off by default");
  a.flag("--force", "write into a non-empty DST (its old weight files are removed)");
  if (!a.parse(argv)) return 0;

  QuantizeModelOptions opt;
  opt.quant.group_size = int(a.get_int("--group-size", 128));
  opt.quant.hadamard_block = int(a.get_int("--hadamard", 0));
  opt.force = a.get_flag("--force");
  const std::string src = a.pos("SRC"), dst = a.pos("DST");
  std::optional<Progress> bar;  // created once the tensor count is known
  opt.progress = [&](int64_t done, int64_t total, const std::string& name) {
    if (!bar) bar.emplace("quantize", total);
    bar->update(done, name);
  };
  const double t0 = now_seconds();
  const QuantizeModelReport r = quantize_model(src, dst, opt);
  if (bar) bar->finish();
  std::printf("quantized %lld tensors to MMFP4 (group size %d, %s), kept %lld as they were\n",
              static_cast<long long>(r.quantized), opt.quant.group_size,
              opt.quant.hadamard_block ? cat("Hadamard block ", opt.quant.hadamard_block).c_str() : "no rotation",
              static_cast<long long>(r.kept));
  std::printf("%.1f MB of tensors -> %.1f MB in %zu file(s) in %.1f s; copied: ", double(r.source_bytes) / 1e6,
              double(r.output_bytes) / 1e6, r.shards.size(), now_seconds() - t0);
  for (size_t i = 0; i < r.copied.size(); ++i) std::printf("%s%s", i ? ", " : "", r.copied[i].c_str());
  std::printf("%s\n", r.copied.empty() ? "nothing" : "");
  std::printf("wrote %s\n", dst.c_str());
  return 0;
}

}  // namespace

MMFP4_COMMAND("quantize", "quantize a safetensors model folder to MMFP4 (RTN, optional Hadamard rotation)",
              run_quantize);

}  // namespace mmfp4::cli
