#include "core/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace mmfp4 {

namespace {
LogLevel level_from_env() {
  const char* e = std::getenv("MMFP4_LOG");
  if (!e) return LogLevel::Warn;
  if (!std::strcmp(e, "debug")) return LogLevel::Debug;
  if (!std::strcmp(e, "info")) return LogLevel::Info;
  if (!std::strcmp(e, "error")) return LogLevel::Error;
  return LogLevel::Warn;
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
