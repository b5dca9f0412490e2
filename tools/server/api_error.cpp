#include "server/api_error.h"

#include "core/json.h"
#include "server/http_response.h"

namespace mmfp4::server {

const char* error_type(int status) {
  if (status == 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

std::string error_body(const ApiError& e) {
  json::Value err = json::Value::object();
  err.set("message", e.message);
  err.set("type", e.type.empty() ? error_type(e.status) : e.type);
  err.set("param", e.param.empty() ? json::Value() : json::Value(e.param));
  err.set("code", e.code.empty() ? json::Value() : json::Value(e.code));
  json::Value body = json::Value::object();
  body.set("error", std::move(err));
  return json::dump(body);
}

void send_error(HttpResponseWriter& w, const ApiError& e) { w.send(e.status, "application/json", error_body(e)); }

}  // namespace mmfp4::server
