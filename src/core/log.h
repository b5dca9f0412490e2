// Logging to stderr. Level from MMFP4_LOG (error|warn|info|debug) or set_log_level(); --verbose sets debug.
#pragma once

#include <string>

#include "core/error.h"

namespace mmfp4 {

enum class LogLevel { Error = 0, Warn = 1, Info = 2, Debug = 3 };

LogLevel log_level();
void set_log_level(LogLevel l);
inline bool log_enabled(LogLevel l) { return int(l) <= int(log_level()); }
void log_write(LogLevel l, const std::string& msg);

template <typename... Args>
void log_debug(Args&&... a) {
  if (log_enabled(LogLevel::Debug)) log_write(LogLevel::Debug, cat(std::forward<Args>(a)...));
}
template <typename... Args>
void log_info(Args&&... a) {
  if (log_enabled(LogLevel::Info)) log_write(LogLevel::Info, cat(std::forward<Args>(a)...));
}
template <typename... Args>
void log_warn(Args&&... a) {
  if (log_enabled(LogLevel::Warn)) log_write(LogLevel::Warn, cat(std::forward<Args>(a)...));
}

// Monotonic clock in seconds.
double now_seconds();

}  // namespace mmfp4
