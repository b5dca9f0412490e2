// The errors of the OpenAI API: an HTTP status and a JSON body
//   {"error": {"message": "...", "type": "invalid_request_error", "param": "max_tokens", "code": null}}
// Handlers throw ApiError for anything a client did wrong; the server turns it into that response.
#pragma once

#include <exception>
#include <string>

namespace mmfp4::server {

class HttpResponseWriter;

struct ApiError : std::exception {
  int status;
  std::string message;
  std::string param;  // the request field at fault ("" -> null)
  std::string code;   // a machine-readable code ("" -> null)
  std::string type;   // "" -> the usual type for the status (see error_type)

  ApiError(int status, std::string message, std::string param = "", std::string code = "", std::string type = "")
      : status(status), message(std::move(message)), param(std::move(param)), code(std::move(code)),
        type(std::move(type)) {}
  const char* what() const noexcept override { return message.c_str(); }
};

// 4xx -> "invalid_request_error" (as OpenAI and vLLM answer bad requests, wrong keys and unknown models),
// 429 -> "rate_limit_error", 5xx -> "server_error".
const char* error_type(int status);

std::string error_body(const ApiError& e);
void send_error(HttpResponseWriter& w, const ApiError& e);

}  // namespace mmfp4::server
