// The HTTP/1.1 request parser on its own: every way a request can arrive in pieces, pipelining, chunked bodies,
// and each malformed or oversized input class with its status (no exceptions, no crashes on random bytes).
#include <gtest/gtest.h>

#include <random>

#include "server/http_parser.h"

namespace mmfp4::server {
namespace {

using Status = HttpRequestParser::Status;

struct Parsed {
  Status status;
  HttpRequest req;
  int error_status = 0;
  std::string error;
};

Parsed parse_all(const std::string& bytes, const HttpLimits& limits = {}) {
  HttpRequestParser p(limits);
  std::string buf = bytes;
  Parsed out{p.parse(buf), {}, 0, ""};
  out.req = p.request();
  out.error_status = p.error_status();
  out.error = p.error_message();
  return out;
}

const std::string kPost =
    "POST /v1/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n"
    "{\"prompt\":\"\"}";

TEST(HttpParser, ParsesARequestWithABody) {
  const Parsed p = parse_all(kPost);
  ASSERT_EQ(p.status, Status::Done) << p.error;
  EXPECT_EQ(p.req.method, "POST");
  EXPECT_EQ(p.req.path, "/v1/completions");
  EXPECT_EQ(p.req.query, "x=1");
  EXPECT_EQ(p.req.body, "{\"prompt\":\"\"}");
  ASSERT_NE(p.req.header("content-type"), nullptr);
  EXPECT_EQ(*p.req.header("content-type"), "application/json");
  EXPECT_TRUE(p.req.keep_alive);
}

TEST(HttpParser, AnySplitOfTheBytesGivesTheSameRequest) {
  for (size_t cut = 0; cut <= kPost.size(); ++cut) {
    HttpRequestParser p(HttpLimits{});
    std::string buf = kPost.substr(0, cut);
    Status s = p.parse(buf);
    if (cut < kPost.size()) {
      ASSERT_EQ(s, Status::NeedMore) << "cut " << cut;
      buf += kPost.substr(cut);
      s = p.parse(buf);
    }
    ASSERT_EQ(s, Status::Done) << "cut " << cut;
    EXPECT_EQ(p.request().body, "{\"prompt\":\"\"}");
    EXPECT_TRUE(buf.empty());
  }
  // One byte at a time.
  HttpRequestParser p(HttpLimits{});
  std::string buf;
  Status s = Status::NeedMore;
  for (char c : kPost) {
    ASSERT_EQ(s, Status::NeedMore);
    buf += c;
    s = p.parse(buf);
  }
  EXPECT_EQ(s, Status::Done);
}

TEST(HttpParser, PipelinedRequestsParseOneAfterAnother) {
  HttpRequestParser p(HttpLimits{});
  std::string buf = kPost + "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n" + kPost.substr(0, 10);
  ASSERT_EQ(p.parse(buf), Status::Done);
  EXPECT_EQ(p.request().method, "POST");
  p.reset();
  ASSERT_EQ(p.parse(buf), Status::Done);
  EXPECT_EQ(p.request().path, "/health");
  EXPECT_FALSE(p.request().keep_alive);
  p.reset();
  EXPECT_EQ(p.parse(buf), Status::NeedMore);
}

TEST(HttpParser, ChunkedBodiesAreDecoded) {
  const std::string req =
      "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n"
      "0\r\nX-Trailer: 1\r\n\r\n";
  for (size_t cut = 0; cut <= req.size(); ++cut) {
    HttpRequestParser p(HttpLimits{});
    std::string buf = req.substr(0, cut);
    Status s = p.parse(buf);
    buf += req.substr(cut);
    if (s == Status::NeedMore) s = p.parse(buf);
    ASSERT_EQ(s, Status::Done) << "cut " << cut << ": " << p.error_message();
    EXPECT_EQ(p.request().body, "Wikipedia in\r\n\r\nchunks.");
  }
}

TEST(HttpParser, HttpOneZeroDefaultsToClose) {
  Parsed p = parse_all("GET / HTTP/1.0\r\n\r\n");
  ASSERT_EQ(p.status, Status::Done);
  EXPECT_FALSE(p.req.keep_alive);
  p = parse_all("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
  EXPECT_TRUE(p.req.keep_alive);
}

TEST(HttpParser, MalformedAndOversizedInputGetTheirStatus) {
  HttpLimits small;
  small.max_header_bytes = 256;
  small.max_body_bytes = 100;
  small.max_headers = 4;
  struct Case {
    std::string bytes;
    int status;
    const char* says;
  } cases[] = {
      {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, "malformed request line"},  // a TLS hello
      {"GET\r\n\r\n", 400, "malformed request line"},
      {"GET / HTTP/1.1 extra\r\n\r\n", 400, "malformed request line"},
      {"G(T / HTTP/1.1\r\n\r\n", 400, "malformed method"},
      {"GET /a\x01 HTTP/1.1\r\n\r\n", 400, "malformed request target"},
      {"GET abc HTTP/1.1\r\n\r\n", 400, "must start with '/'"},
      {"GET / HTTP/2.0\r\n\r\n", 505, "not supported"},
      {"GET / HTTX/1.1\r\n\r\n", 400, "malformed HTTP version"},
      {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400, "malformed header line"},
      {"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400, "malformed header line"},
      {"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400, "folding"},
      {"GET / HTTP/1.1\r\nA: b\x01\r\n\r\n", 400, "control character"},
      {"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400, "Content-Length"},
      {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "Content-Length"},
      {"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400, "Content-Length"},
      {"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, "conflicting"},
      {"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "both"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, "not supported"},
      {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "HTTP/1.0"},
      {"POST / HTTP/1.1\r\nExpect: something\r\n\r\n", 417, "expectation"},
      {"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", 413, "exceeds the limit of 100"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n", 413, "exceeds the limit"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n" + std::string(64, 'a') + "\r\n40\r\n", 413,
       "exceeds the limit"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "bad chunk size"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n", 400, "bad chunk size"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc", 400, "not followed by CRLF"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + std::string(2000, '1'), 400, "too long"},
      {"GET /" + std::string(300, 'a') + " HTTP/1.1\r\n\r\n", 431, "exceed 256 bytes"},
      {"GET / HTTP/1.1\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n\r\n", 431, "more than 4 header"},
      {"GET / HTTP/1.1\r\nA: " + std::string(400, 'x'), 431, "exceed 256 bytes"},
  };
  for (const auto& c : cases) {
    const Parsed p = parse_all(c.bytes, small);
    EXPECT_EQ(p.status, Status::Error) << c.bytes;
    EXPECT_EQ(p.error_status, c.status) << c.bytes << " -> " << p.error;
    EXPECT_NE(p.error.find(c.says), std::string::npos) << c.bytes << " -> " << p.error;
  }
}

TEST(HttpParser, RandomBytesNeverCrashOrHang) {
  std::mt19937_64 rng(7);
  HttpLimits limits;
  limits.max_header_bytes = 512;
  limits.max_body_bytes = 512;
  const std::string seeds[] = {kPost, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"};
  for (int iter = 0; iter < 20000; ++iter) {
    std::string bytes = seeds[iter % 2];
    // Mutate a few bytes, or write pure noise.
    if (iter % 5 == 0) {
      bytes.assign(size_t(rng() % 300), '\0');
      for (char& c : bytes) c = char(rng());
    } else {
      for (int k = 0; k < 1 + int(rng() % 4); ++k) bytes[rng() % bytes.size()] = char(rng());
    }
    HttpRequestParser p(limits);
    std::string buf;
    for (size_t i = 0; i < bytes.size();) {
      const size_t n = 1 + rng() % 16;
      buf += bytes.substr(i, n);
      i += n;
      const Status s = p.parse(buf);
      if (s == Status::Error) {
        EXPECT_GE(p.error_status(), 400);
        EXPECT_FALSE(p.error_message().empty());
        break;
      }
      if (s == Status::Done) p.reset();
    }
  }
}

}  // namespace
}  // namespace mmfp4::server
