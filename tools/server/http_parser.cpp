#include "server/http_parser.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"

namespace mmfp4::server {
namespace {

// RFC 9110 token characters (method and header names).
bool is_tchar(unsigned char c) {
  if (std::isalnum(c)) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-': case '.':
    case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

bool all_tchar(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return is_tchar((unsigned char)c); });
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = char(std::tolower((unsigned char)c));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Comma-separated list items of a header value, trimmed, lower-cased, empty items dropped.
std::vector<std::string> list_items(std::string_view v) {
  std::vector<std::string> out;
  while (!v.empty()) {
    const size_t c = v.find(',');
    std::string_view item = trim(v.substr(0, c));
    if (!item.empty()) out.push_back(lower(item));
    if (c == std::string_view::npos) break;
    v.remove_prefix(c + 1);
  }
  return out;
}

// Printable for an error message: control bytes and non-ASCII shown as \xNN, cut at 60 characters.
std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s.substr(0, 60)) {
    if (c >= 0x20 && c < 0x7f) {
      out += char(c);
    } else {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (s.size() > 60) out += "...";
  return out;
}

// Takes the next line (without its "\r\n" or "\n") off the front of buf; false when no full line is there yet.
bool take_line(std::string& buf, std::string& line) {
  const size_t nl = buf.find('\n');
  if (nl == std::string::npos) return false;
  size_t end = nl;
  if (end > 0 && buf[end - 1] == '\r') --end;
  line.assign(buf, 0, end);
  buf.erase(0, nl + 1);
  return true;
}

}  // namespace

void HttpRequestParser::reset() {
  state_ = State::Head;
  req_ = HttpRequest();
  content_length_ = chunk_left_ = 0;
  trailer_bytes_ = head_scan_ = 0;
  error_status_ = 0;
  error_.clear();
}

HttpRequestParser::Status HttpRequestParser::fail(int status, std::string message) {
  state_ = State::Error;
  error_status_ = status;
  error_ = std::move(message);
  return Status::Error;
}

HttpRequestParser::Status HttpRequestParser::parse(std::string& buf) {
  while (true) {
    switch (state_) {
      case State::Head: {
        const Status s = parse_head(buf);
        if (s != Status::Done) return s;
        break;  // continue with the body state parse_head chose
      }
      case State::Body: {
        const size_t take = size_t(std::min<uint64_t>(content_length_ - req_.body.size(), buf.size()));
        req_.body.append(buf, 0, take);
        buf.erase(0, take);
        if (req_.body.size() < content_length_) return Status::NeedMore;
        state_ = State::Done;
        break;
      }
      case State::ChunkSize:
      case State::ChunkData:
      case State::ChunkDataEnd:
      case State::Trailers: {
        const Status s = parse_chunked(buf);
        if (s != Status::Done) return s;
        break;
      }
      case State::Done: return Status::Done;
      case State::Error: return Status::Error;
    }
  }
}

HttpRequestParser::Status HttpRequestParser::parse_head(std::string& buf) {
  // Empty lines before the request line are ignored (RFC 9112 2.2: robustness after a previous body's CRLF).
  size_t skip = 0;
  while (skip < buf.size() && (buf[skip] == '\r' || buf[skip] == '\n')) ++skip;
  if (skip) buf.erase(0, skip);
  if (buf.empty()) return Status::NeedMore;
  // The head ends at the first empty line.
  // Scanning resumes where the last call stopped, so a head sent one byte at a time costs linear time.
  size_t end = std::string::npos, pos = head_scan_ > 2 ? head_scan_ - 2 : 0;
  while (true) {
    const size_t nl = buf.find('\n', pos);
    if (nl == std::string::npos || nl > limits_.max_header_bytes) break;
    if (nl + 1 < buf.size() && buf[nl + 1] == '\n') {
      end = nl + 2;
      break;
    }
    if (nl + 2 < buf.size() && buf[nl + 1] == '\r' && buf[nl + 2] == '\n') {
      end = nl + 3;
      break;
    }
    pos = nl + 1;
  }
  if (end == std::string::npos) {
    head_scan_ = buf.size();
    if (buf.size() > limits_.max_header_bytes)
      return fail(431, cat("the request line and headers exceed ", limits_.max_header_bytes, " bytes"));
    // A request that does not start like one (binary garbage, a TLS handshake) is refused at once.
    const size_t sp = buf.find(' ');
    const std::string_view first(buf.data(), std::min(buf.size(), sp == std::string::npos ? buf.size() : sp));
    if (!std::all_of(first.begin(), first.end(), [](char c) { return is_tchar((unsigned char)c); }))
      return fail(400, cat("malformed request line: '", printable(buf.substr(0, buf.find('\n'))), "'"));
    return Status::NeedMore;
  }
  if (end > limits_.max_header_bytes)
    return fail(431, cat("the request line and headers exceed ", limits_.max_header_bytes, " bytes"));
  std::string head = buf.substr(0, end);
  buf.erase(0, end);
  head_scan_ = 0;

  std::string line;
  take_line(head, line);
  // Request line: METHOD SP request-target SP HTTP-version.
  const size_t s1 = line.find(' '), s2 = s1 == std::string::npos ? s1 : line.find(' ', s1 + 1);
  if (s1 == std::string::npos || s2 == std::string::npos || line.find(' ', s2 + 1) != std::string::npos)
    return fail(400, cat("malformed request line: '", printable(line), "'"));
  req_.method = line.substr(0, s1);
  req_.target = line.substr(s1 + 1, s2 - s1 - 1);
  const std::string version = line.substr(s2 + 1);
  if (!all_tchar(req_.method) || req_.method.size() > 32)
    return fail(400, cat("malformed method: '", printable(req_.method), "'"));
  if (req_.target.empty() || std::any_of(req_.target.begin(), req_.target.end(), [](char c) {
        return (unsigned char)c <= 0x20 || (unsigned char)c >= 0x7f;
      }))
    return fail(400, cat("malformed request target: '", printable(req_.target), "'"));
  if (version == "HTTP/1.1") {
    req_.version_minor = 1;
  } else if (version == "HTTP/1.0") {
    req_.version_minor = 0;
  } else if (version.size() == 8 && version.compare(0, 5, "HTTP/") == 0 && std::isdigit((unsigned char)version[5]) &&
             version[6] == '.' && std::isdigit((unsigned char)version[7])) {
    return fail(505, cat("HTTP version ", version, " is not supported (HTTP/1.1 and HTTP/1.0 are)"));
  } else {
    return fail(400, cat("malformed HTTP version: '", printable(version), "'"));
  }
  // Absolute form (a proxy-style request): keep only the path.
  std::string_view path = req_.target;
  if (path.starts_with("http://") || path.starts_with("https://")) {
    const size_t slash = path.find('/', path.find("//") + 2);
    path = slash == std::string_view::npos ? std::string_view("/") : path.substr(slash);
  } else if (path != "*" && path.front() != '/') {
    return fail(400, cat("malformed request target: '", printable(req_.target), "' (must start with '/')"));
  }
  const size_t q = path.find('?');
  req_.path = std::string(path.substr(0, q));
  if (q != std::string_view::npos) req_.query = std::string(path.substr(q + 1));
  const size_t frag = req_.query.find('#');
  if (frag != std::string::npos) req_.query.resize(frag);

  // Header fields.
  while (take_line(head, line)) {
    if (line.empty()) break;
    if (line.front() == ' ' || line.front() == '\t')
      return fail(400, "obsolete header line folding is not accepted");
    if (req_.headers.size() >= limits_.max_headers)
      return fail(431, cat("more than ", limits_.max_headers, " header fields"));
    const size_t colon = line.find(':');
    if (colon == std::string::npos || !all_tchar(std::string_view(line).substr(0, colon)))
      return fail(400, cat("malformed header line: '", printable(line), "'"));
    const std::string_view value = trim(std::string_view(line).substr(colon + 1));
    if (std::any_of(value.begin(), value.end(),
                    [](char c) { return ((unsigned char)c < 0x20 && c != '\t') || (unsigned char)c == 0x7f; }))
      return fail(400, cat("control character in header '", line.substr(0, colon), "'"));
    req_.headers.push_back({lower(line.substr(0, colon)), std::string(value)});
  }

  // Framing and connection semantics.
  bool has_length = false, chunked = false;
  std::vector<std::string> codings;
  req_.keep_alive = req_.version_minor >= 1;
  for (const auto& h : req_.headers) {
    if (h.name == "content-length") {
      for (const auto& item : list_items(h.value)) {
        if (item.size() > 18 || !std::all_of(item.begin(), item.end(), [](char c) { return c >= '0' && c <= '9'; }))
          return fail(400, cat("malformed Content-Length: '", printable(h.value), "'"));
        const uint64_t n = std::stoull(item);
        if (has_length && n != content_length_) return fail(400, "conflicting Content-Length headers");
        content_length_ = n;
        has_length = true;
      }
      if (!has_length) return fail(400, "empty Content-Length");
    } else if (h.name == "transfer-encoding") {
      for (auto& c : list_items(h.value)) codings.push_back(std::move(c));
    } else if (h.name == "connection") {
      for (const auto& item : list_items(h.value)) {
        if (item == "close") req_.keep_alive = false;
        if (item == "keep-alive" && req_.version_minor == 0) req_.keep_alive = true;
      }
    } else if (h.name == "expect") {
      if (lower(h.value) != "100-continue") return fail(417, cat("unsupported expectation: '", printable(h.value), "'"));
      req_.expect_continue = req_.version_minor >= 1;
    }
  }
  if (!codings.empty()) {
    if (codings.size() != 1 || codings[0] != "chunked")
      return fail(501, cat("Transfer-Encoding '", printable(req_.header("transfer-encoding") ? *req_.header("transfer-encoding") : ""),
                           "' is not supported (only chunked is)"));
    if (has_length) return fail(400, "both Content-Length and Transfer-Encoding were sent");
    if (req_.version_minor == 0) return fail(400, "Transfer-Encoding in an HTTP/1.0 request");
    chunked = true;
  }
  if (has_length && content_length_ > limits_.max_body_bytes)
    return fail(413, cat("the request body (", content_length_, " bytes) exceeds the limit of ", limits_.max_body_bytes,
                         " bytes"));
  if (chunked) {
    state_ = State::ChunkSize;
  } else if (content_length_ > 0) {
    req_.body.reserve(size_t(content_length_));
    state_ = State::Body;
  } else {
    state_ = State::Done;
  }
  return Status::Done;
}

HttpRequestParser::Status HttpRequestParser::parse_chunked(std::string& buf) {
  std::string line;
  while (true) {
    switch (state_) {
      case State::ChunkSize: {
        if (!take_line(buf, line)) {
          if (buf.size() > 1024) return fail(400, "malformed chunked body: chunk-size line too long");
          return Status::NeedMore;
        }
        // chunk-size [; extensions]: the extensions are ignored.
        std::string_view v = trim(std::string_view(line).substr(0, line.find(';')));
        if (v.empty() || v.size() > 16 || !std::all_of(v.begin(), v.end(), [](char c) { return std::isxdigit((unsigned char)c); }))
          return fail(400, cat("malformed chunked body: bad chunk size '", printable(line), "'"));
        const uint64_t n = std::stoull(std::string(v), nullptr, 16);
        if (n > limits_.max_body_bytes || req_.body.size() + n > limits_.max_body_bytes)
          return fail(413, cat("the request body exceeds the limit of ", limits_.max_body_bytes, " bytes"));
        chunk_left_ = n;
        state_ = n == 0 ? State::Trailers : State::ChunkData;
        break;
      }
      case State::ChunkData: {
        const size_t take = size_t(std::min<uint64_t>(chunk_left_, buf.size()));
        req_.body.append(buf, 0, take);
        buf.erase(0, take);
        chunk_left_ -= take;
        if (chunk_left_ > 0) return Status::NeedMore;
        state_ = State::ChunkDataEnd;
        break;
      }
      case State::ChunkDataEnd: {
        if (buf.empty() || (buf.size() == 1 && buf[0] == '\r')) return Status::NeedMore;
        if (buf.compare(0, 2, "\r\n") == 0) {
          buf.erase(0, 2);
        } else if (buf[0] == '\n') {
          buf.erase(0, 1);
        } else {
          return fail(400, "malformed chunked body: chunk data not followed by CRLF");
        }
        state_ = State::ChunkSize;
        break;
      }
      case State::Trailers: {
        if (!take_line(buf, line)) {
          if (trailer_bytes_ + buf.size() > limits_.max_header_bytes)
            return fail(431, cat("chunked trailers exceed ", limits_.max_header_bytes, " bytes"));
          return Status::NeedMore;
        }
        trailer_bytes_ += line.size() + 2;
        if (trailer_bytes_ > limits_.max_header_bytes)
          return fail(431, cat("chunked trailers exceed ", limits_.max_header_bytes, " bytes"));
        if (line.empty()) {
          state_ = State::Done;
          return Status::Done;
        }
        break;  // trailer fields are ignored
      }
      default:
        return Status::Done;
    }
  }
}

}  // namespace mmfp4::server
