// mmfp4: the command-line front door. Dispatches to the subcommands registered in cmd_*.cpp.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "command.h"
#include "core/error.h"

namespace mmfp4::cli {

static std::vector<Command>& registry() {
  static std::vector<Command> r;
  return r;
}
bool register_command(const Command& c) {
  registry().push_back(c);
  return true;
}
const std::vector<Command>& commands() { return registry(); }

}  // namespace mmfp4::cli

static void usage() {
  std::printf("mmfp4 — inference engine for MMFP4 (4-bit E2M1) quantized language models\n\nusage: mmfp4 <command> [options]\n\ncommands:\n");
  for (const auto& c : mmfp4::cli::commands()) std::printf("  %-12s %s\n", c.name, c.summary);
  std::printf("\n`mmfp4 <command> --help` shows a command's options.\n");
}

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    usage();
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    std::printf("mmfp4 0.1.0\n");
    return 0;
  }
  std::vector<std::string> args(argv + 1, argv + argc);
  for (const auto& c : mmfp4::cli::commands()) {
    if (args[0] != c.name) continue;
    try {
      return c.run(args);
    } catch (const mmfp4::Error& e) {
      std::fprintf(stderr, "mmfp4 %s: error: %s\n", c.name, e.what());
      return 1;
    } catch (const std::bad_alloc&) {
      std::fprintf(stderr, "mmfp4 %s: error: out of host memory\n", c.name);
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mmfp4 %s: error: %s\n", c.name, e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "mmfp4: unknown command '%s'\n\n", args[0].c_str());
  usage();
  return 2;
}
