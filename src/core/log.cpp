#include "core/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "core/env.h"
#include "core/error.h"

namespace mmfp4 {

namespace {
// Read while static objects are made (nothing can catch an error there): a malformed MMFP4_LOG is reported on stderr
// and the level stays at warn.
LogLevel level_from_env() {
  try {
    const std::string v = env_choice("MMFP4_LOG", {"debug", "info", "warn", "error"}).value_or("warn");
    return v == "debug" ? LogLevel::Debug : v == "info" ? LogLevel::Info : v == "error" ? LogLevel::Error
                                                                                          : LogLevel::Warn;
  } catch (const Error& e) {
    std::fprintf(stderr, "mmfp4 warning: %s; logging at warn\n", e.what());
    return LogLevel::Warn;
  }
}
std::atomic<int> g_level{int(level_from_env())};
std::mutex g_log_mu;
}  // namespace

LogLevel log_level() { return LogLevel(g_level.load(std::memory_order_relaxed)); }
void set_log_level(LogLevel l) { g_level.store(int(l), std::memory_order_relaxed); }

void log_write(LogLevel l, const std::string& msg) {
  static const char* names[] = {"error", "warn", "info", "debug"};
  std::lock_guard<std::mutex> lock(g_log_mu);
  std::fprintf(stderr, "mmfp4 %s: %s\n", names[int(l)], msg.c_str());
}

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace mmfp4
