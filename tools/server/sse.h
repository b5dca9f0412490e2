// Server-sent events as the OpenAI streaming API frames them: each event is one line "data: <json>" followed by
// a blank line, and the stream ends with "data: [DONE]". JSON written by json::dump has no raw newlines (they
// are escaped inside strings), so one data line per event is always enough.
#pragma once

#include <string>
#include <string_view>

#include "server/http_response.h"

namespace mmfp4::server {

inline std::string sse_event(std::string_view data) {
  std::string out;
  out.reserve(data.size() + 8);
  out += "data: ";
  out += data;
  out += "\n\n";
  return out;
}

inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

// Starts an event stream (no caching, no proxy buffering).
inline bool begin_sse(HttpResponseWriter& w) {
  return w.begin_stream(200, "text/event-stream; charset=utf-8",
                        {{"Cache-Control", "no-cache"}, {"X-Accel-Buffering", "no"}});
}

}  // namespace mmfp4::server
