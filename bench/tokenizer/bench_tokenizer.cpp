// Tokenizer benchmark: load time of a tokenizer.json and single-threaded encode/decode speed on English text built
// from files every Debian machine has (/usr/share/common-licenses, /usr/share/doc/*/copyright). Prints its setup
// (machine, file, text) first. The bar (issue #3) is Hugging Face's Rust library single-threaded; rust_baseline.js
// measures it on the same text (--dump-text writes it).
//
//   bench_tokenizer [--tokenizer DIR] [--mb 1] [--dump-text FILE]
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "core/mapped_file.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

using namespace mmfp4;
namespace fs = std::filesystem;

namespace {

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

// English text: the license texts, then Debian copyright files, in sorted order, repeated if needed, cut at a
// line boundary near `bytes`. Invalid UTF-8 lines are skipped.
std::string english_text(size_t bytes, std::vector<std::string>& sources) {
  std::vector<fs::path> files;
  for (const char* dir : {"/usr/share/common-licenses"})
    if (fs::is_directory(dir))
      for (const auto& e : fs::directory_iterator(dir))
        if (e.is_regular_file()) files.push_back(e.path());
  if (fs::is_directory("/usr/share/doc"))
    for (const auto& e : fs::directory_iterator("/usr/share/doc"))
      if (fs::is_regular_file(e.path() / "copyright")) files.push_back(e.path() / "copyright");
  std::sort(files.begin(), files.end());
  std::string all;
  for (const auto& f : files) {
    std::ifstream in(f);
    std::string line;
    size_t before = all.size();
    while (std::getline(in, line))
      if (utf8::is_valid(line)) all += line + "\n";
    if (all.size() > before) sources.push_back(f.string());
  }
  if (all.empty()) fail("no English text found under /usr/share/common-licenses or /usr/share/doc");
  std::string text;
  while (text.size() < bytes) text += all;
  size_t cut = text.rfind('\n', bytes);
  text.resize(cut == std::string::npos ? bytes : cut + 1);
  return text;
}

template <typename F>
double best_of(int n, F&& f) {
  double best = 1e30;
  for (int i = 0; i < n; ++i) {
    double t0 = now_seconds();
    f();
    best = std::min(best, now_seconds() - t0);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = MMFP4_SOURCE_DIR "/../shared/fixtures/tokenizers/qwen3";
  double mb = 1.0;
  std::string dump;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--tokenizer")) dir = argv[i + 1];
    else if (!std::strcmp(argv[i], "--mb")) mb = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--dump-text")) dump = argv[i + 1];
    else {
      std::fprintf(stderr, "usage: bench_tokenizer [--tokenizer DIR] [--mb 1] [--dump-text FILE]\n");
      return 2;
    }
  }
  try {
    std::vector<std::string> sources;
    std::string text = english_text(size_t(mb * 1e6), sources);
    if (!dump.empty()) std::ofstream(dump, std::ios::binary) << text;
    size_t json_bytes = fs::file_size(dir + "/tokenizer.json");
    std::printf("== tokenizer benchmark ==\n");
    std::printf("machine   %s, %u hardware threads (benchmark is single-threaded)\n", cpu_model().c_str(),
                std::thread::hardware_concurrency());
    std::printf("tokenizer %s/tokenizer.json (%.1f MB)\n", dir.c_str(), json_bytes / 1e6);
    std::printf("text      %.2f MB of English from %zu files under /usr/share (common-licenses, doc/*/copyright)\n",
                text.size() / 1e6, sources.size());

    std::unique_ptr<Tokenizer> tok;
    double load = best_of(3, [&] { tok = Tokenizer::from_dir(dir); });
    std::printf("load      %.3f s (best of 3; includes reading and parsing the JSON)\n", load);

    // A fresh tokenizer has an empty word cache: the first encode is the cold one.
    auto fresh = Tokenizer::from_dir(dir);
    std::vector<int32_t> ids;
    double cold = best_of(1, [&] { ids = fresh->encode(text, false); });
    double warm = best_of(3, [&] { ids = tok->encode(text, false); });
    std::printf("encode    %.1f MB/s cold cache, %.1f MB/s warm (best of 3); %zu tokens, %.2f bytes/token\n",
                text.size() / 1e6 / cold, text.size() / 1e6 / warm, ids.size(), double(text.size()) / ids.size());
    std::string back;
    double dec = best_of(3, [&] { back = tok->decode(ids, false); });
    std::printf("decode    %.1f MB/s (%.1f M tokens/s)%s\n", back.size() / 1e6 / dec, ids.size() / 1e6 / dec,
                back == text ? "" : "  ROUND TRIP MISMATCH");
    double stream = best_of(1, [&] {
      StreamDecoder sd(*tok, false);
      std::string out;
      for (int32_t id : ids) out += sd.push(id);
      out += sd.flush();
      if (out != back) std::printf("STREAM MISMATCH\n");
    });
    std::printf("stream    %.1f M tokens/s (StreamDecoder, one push per token)\n", ids.size() / 1e6 / stream);
    return back == text ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_tokenizer: error: %s\n", e.what());
    return 1;
  }
}
