// Runs the mmfp4 binary as a user would, capturing exit code, stdout and stderr.
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <string>

#include "common/temp_dir.h"
#include "core/mapped_file.h"

namespace mmfp4::test {

struct CliRun {
  int rc;
  std::string out, err;
};

// Runs `mmfp4 <args>` through the shell (MMFP4_CLI overrides the binary). `stdin_text`, when given, is fed to it.
inline CliRun mmfp4(const std::string& args, const std::string* stdin_text = nullptr) {
  static TempDir logs;
  const char* bin = std::getenv("MMFP4_CLI");
  std::string cmd = std::string(bin ? bin : MMFP4_BINARY_DIR "/bin/mmfp4") + " " + args + " > " + (logs / "out") +
                    " 2> " + (logs / "err");
  if (stdin_text) {
    const std::string in = logs / "in";
    FILE* f = std::fopen(in.c_str(), "wb");
    std::fwrite(stdin_text->data(), 1, stdin_text->size(), f);
    std::fclose(f);
    cmd += " < " + in;
  } else {
    cmd += " < /dev/null";
  }
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(logs / "out"), read_file(logs / "err")};
}

}  // namespace mmfp4::test
