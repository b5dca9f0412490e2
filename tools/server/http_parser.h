// An incremental HTTP/1.1 request parser with bounded sizes. Bytes arrive in any pieces (one at a time, or several
// pipelined requests at once); the parser consumes them from the front of the connection's buffer and says when a
// request is complete, or why it is malformed as an HTTP status (400, 413, 431, 501, 505, 417) and a message.
// After an error the connection cannot be resynchronised: the server answers and closes it.
//
// Framing follows RFC 9112: a body is delimited by Content-Length or by "Transfer-Encoding: chunked"; both at once,
// differing Content-Lengths or any other transfer coding are refused (request smuggling defences).
#pragma once

#include <cstdint>
#include <string>

#include "server/http_message.h"

namespace mmfp4::server {

class HttpRequestParser {
 public:
  enum class Status { NeedMore, Done, Error };

  explicit HttpRequestParser(const HttpLimits& limits) : limits_(limits) {}

  // Consumes what it can from the front of `buf` (the bytes received and not yet parsed).
  Status parse(std::string& buf);
  // True once the request line and headers are parsed (the body may still be missing): the server then knows
  // whether to send "100 Continue".
  bool head_done() const { return state_ != State::Head; }
  // True once any byte of this request has been consumed or is waiting: an idle connection is not a slow one.
  bool started(const std::string& buf) const { return state_ != State::Head || !buf.empty(); }

  HttpRequest& request() { return req_; }
  int error_status() const { return error_status_; }
  const std::string& error_message() const { return error_; }

  // Ready for the next request on the same connection.
  void reset();

 private:
  enum class State { Head, Body, ChunkSize, ChunkData, ChunkDataEnd, Trailers, Done, Error };
  Status fail(int status, std::string message);
  Status parse_head(std::string& buf);
  Status parse_chunked(std::string& buf);

  HttpLimits limits_;
  State state_ = State::Head;
  HttpRequest req_;
  uint64_t content_length_ = 0;
  uint64_t chunk_left_ = 0;
  size_t trailer_bytes_ = 0;
  size_t head_scan_ = 0;  // bytes of the buffer already searched for the end of the head
  int error_status_ = 0;
  std::string error_;
};

}  // namespace mmfp4::server
