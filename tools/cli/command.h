// The mmfp4 command-line tool is a set of subcommands, one file each (cmd_<name>.cpp), each registering itself
// with MMFP4_COMMAND. Adding a subcommand touches no other file.
#pragma once

#include <string>
#include <vector>

namespace mmfp4::cli {

// A subcommand gets its own arguments (argv[0] is the subcommand name) and returns the process exit code.
// It may throw mmfp4::Error: main() prints "mmfp4 <cmd>: error: <message>" and exits 1.
using CommandFn = int (*)(const std::vector<std::string>& args);

struct Command {
  const char* name;
  const char* summary;  // one line for `mmfp4 --help`
  CommandFn run;
};

bool register_command(const Command& c);
const std::vector<Command>& commands();

}  // namespace mmfp4::cli

#define MMFP4_COMMAND_CONCAT2(a, b) a##b
#define MMFP4_COMMAND_CONCAT(a, b) MMFP4_COMMAND_CONCAT2(a, b)
#define MMFP4_COMMAND(name, summary, fn) \
  static const bool MMFP4_COMMAND_CONCAT(mmfp4_cmd_registered_, __LINE__) = ::mmfp4::cli::register_command({name, summary, fn})
