// 1,000 randomly mutated requests against aecd over a sqlite store: each is answered 4xx (or, for
// a request that can never be complete, the connection closes), never 5xx, the server survives,
// and the store is unchanged.
//
// Why the store cannot change: the base requests are valid requests of every route, several of
// which would change the store (acquire with queue, release, purge, force-release, leave the
// line). So only mutations that always make a request invalid are generated:
//   - the method changed by one byte (flip, insert, delete): no path of the API takes two
//     methods, and no one-byte change of GET, POST or DELETE gives another of them;
//   - "%G", a space or a control byte inserted into the target: a malformed escape (never
//     decodable) or a malformed request line;
//   - the bearer token changed by one byte (flip, insert, delete): an unknown token (the server
//     knows one), never on /healthz and /readyz, which take none;
//   - a malformed header line, a control byte in a header name, a second Content-Length that
//     disagrees, a Content-Length that is not a number, Transfer-Encoding next to Content-Length,
//     a broken "HTTP/" version;
//   - for routes that read a JSON body: a control byte (never JSON whitespace) replacing or
//     inserted into the body, the body cut to a proper prefix of itself (an unclosed object),
//     or an unknown field, each with a matching Content-Length;
//   - framing errors with no way to answer (the server waits for bytes that never come, then
//     header_timeout closes the connection): the request cut inside its head, or a body shorter
//     than its Content-Length. Only these may end in a closed connection.
#include <array>
#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <aec/open_store.h>

#include "tests/server/raw_http.h"
#include "tests/support/temp_dir.h"

namespace aec::testing {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view kAdmin = "admin-all-0123456789abcdef";

struct Base {
  std::string method;
  std::string target;
  std::string body;
  bool reads_body = false;  // the route parses a JSON body
  bool needs_token = true;
};

enum class Kind {
  MethodFlip,
  MethodInsert,
  MethodDelete,
  TargetInsert,
  TokenFlip,
  TokenInsert,
  TokenDelete,
  BadHeaderLine,
  HeaderNameControl,
  SecondLength,
  LengthJunk,
  ChunkedAndLength,
  BadVersion,
  BodyReplace,
  BodyInsert,
  BodyPrefix,
  BodyUnknownField,
  CutHead,
  ShortBody,
};
constexpr int kKinds = static_cast<int>(Kind::ShortBody) + 1;

bool may_close(Kind k) {
  return k == Kind::CutHead || k == Kind::ShortBody;
}

struct Mutant {
  Kind kind;
  std::string bytes;
};

class Mutator {
 public:
  explicit Mutator(std::uint32_t seed) : rng_(seed) {}

  std::size_t pick(std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_);
  }
  // A byte that is never JSON whitespace and never valid unescaped in JSON.
  char control() {
    static constexpr std::string_view kBytes =
        "\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18"
        "\x19\x1a\x1b\x1c\x1d\x1e\x1f";
    return kBytes[pick(kBytes.size())];
  }
  char flip(char c) { return static_cast<char>(c ^ static_cast<char>(1 + pick(255))); }
  char any() { return static_cast<char>(pick(256)); }

  Kind kind_for(const Base& b) {
    for (;;) {
      auto k = static_cast<Kind>(pick(kKinds));
      bool body_kind = k == Kind::BodyReplace || k == Kind::BodyInsert || k == Kind::BodyPrefix ||
                       k == Kind::BodyUnknownField;
      bool token_kind = k == Kind::TokenFlip || k == Kind::TokenInsert || k == Kind::TokenDelete;
      if ((body_kind && !b.reads_body) || (token_kind && !b.needs_token) ||
          (k == Kind::ShortBody && b.body.empty())) {
        continue;
      }
      return k;
    }
  }

  Mutant mutate(const Base& b) {
    Kind k = kind_for(b);
    std::string method = b.method, target = b.target, version = "HTTP/1.1", token(kAdmin);
    std::string body = b.body, extra;
    std::string length = std::to_string(b.body.size());
    bool fix_length = true;
    switch (k) {
      case Kind::MethodFlip: {
        std::size_t i = pick(method.size());
        method[i] = flip(method[i]);
        break;
      }
      case Kind::MethodInsert:
        method.insert(pick(method.size() + 1), 1, any());
        break;
      case Kind::MethodDelete:
        method.erase(pick(method.size()), 1);
        break;
      case Kind::TargetInsert: {
        static const std::array<std::string, 3> kBad = {"%G", " ", "\x01"};
        std::string bad = kBad[pick(kBad.size())];
        if (bad == "\x01") {
          bad = std::string(1, control());
        }
        target.insert(pick(target.size() + 1), bad);
        break;
      }
      case Kind::TokenFlip: {
        std::size_t i = pick(token.size());
        token[i] = flip(token[i]);
        break;
      }
      case Kind::TokenInsert: {
        // Not a space or tab: around the token they are optional whitespace, and the token
        // unchanged (seed 3980147526 found "Bearer  TOKEN" answered 200, rightly).
        char c = any();
        token.insert(pick(token.size() + 1), 1, c == ' ' || c == '\t' ? '!' : c);
        break;
      }
      case Kind::TokenDelete:
        token.erase(pick(token.size()), 1);
        break;
      case Kind::BadHeaderLine: {
        static const std::array<std::string, 4> kLines = {"X-Bad header\r\n", "X Bad: 1\r\n",
                                                          ": no-name\r\n",
                                                          std::string("X-Bad: a\0b\r\n", 12)};
        extra = kLines[pick(kLines.size())];
        break;
      }
      case Kind::HeaderNameControl:
        extra = fmt::format("X-B{}ad: 1\r\n", control());
        break;
      case Kind::SecondLength:
        extra = fmt::format("Content-Length: {}\r\n", b.body.size() + 1 + pick(9));
        break;
      case Kind::LengthJunk:
        length = pick(2) == 0 ? length + "x" : "-" + length;
        fix_length = false;
        break;
      case Kind::ChunkedAndLength:
        extra = "Transfer-Encoding: chunked\r\n";
        break;
      case Kind::BadVersion: {
        std::size_t i = pick(5);  // in "HTTP/", never the digits (HTTP/1.0 is valid)
        version[i] = flip(version[i]);
        break;
      }
      case Kind::BodyReplace:
        body[pick(body.size())] = control();
        break;
      case Kind::BodyInsert:
        body.insert(pick(body.size() + 1), 1, control());
        break;
      case Kind::BodyPrefix:
        body.resize(1 + pick(body.size() - 1));
        break;
      case Kind::BodyUnknownField:
        body.insert(1, R"("zz_unknown": 1, )");
        break;
      case Kind::CutHead:
      case Kind::ShortBody:
        break;
    }
    if (fix_length && length == std::to_string(b.body.size())) {
      length = std::to_string(body.size());
    }
    std::string head = fmt::format("{} {} {}\r\nHost: 127.0.0.1\r\n", method, target, version);
    if (b.needs_token) {
      head += fmt::format("Authorization: Bearer {}\r\n", token);
    }
    head += extra + fmt::format("Content-Length: {}\r\n\r\n", length);
    if (k == Kind::CutHead) {
      return {k, head.substr(0, 1 + pick(head.size() - 2))};
    }
    if (k == Kind::ShortBody) {
      return {k, head + body.substr(0, pick(body.size()))};
    }
    return {k, head + body};
  }

 private:
  std::mt19937 rng_;
};

// The store's state as text: every execution and the state of the keys the bases name, without
// what time alone changes (expires_in).
std::string snapshot(Store& store) {
  std::string out;
  auto all = store.list({.limit = 1000});
  EXPECT_TRUE(all);
  for (const Execution& e : all ? *all : std::vector<Execution>{}) {
    out += fmt::format("exec {} {} {} {} {} {} {}\n", e.id, e.key, e.token, to_string(e.status),
                       e.ended_at.has_value(), e.exit_code.value_or(-1), e.reason);
  }
  for (std::string_view key : {"a/k", "a/done", "a/free"}) {
    auto s = store.get(key);
    EXPECT_TRUE(s);
    if (!s) {
      continue;
    }
    out += fmt::format("key {} v{} t{} queue [{}] last {}\n", key, s->version, s->last_token,
                       fmt::join(s->queue, ","), s->last_ended ? s->last_ended->id : "-");
    for (const Holder& h : s->holders) {
      out += fmt::format("  holder {} {}\n", h.execution.id, h.execution.token);
    }
  }
  return out;
}

std::vector<Base> bases(std::int64_t token, std::int64_t version) {
  return {
      {"POST", "/v1/leases", R"({"key":"a/free","execution_id":"fuzz","queue":true})", true},
      {"POST", fmt::format("/v1/keys/a%2Fk/leases/{}/renew", token), R"({"ttl_ms":1000})", true},
      {"POST", fmt::format("/v1/keys/a%2Fk/leases/{}/release", token),
       R"({"status":"failed","exit_code":3})", true},
      {"DELETE", "/v1/keys/a%2Fk/queue/waiter-1", ""},
      {"GET", "/v1/keys/a%2Fk", ""},
      {"GET", fmt::format("/v1/keys/a%2Fk?index={}&wait=1s", version), ""},
      {"GET", "/v1/keys?prefix=a%2F&limit=10", ""},
      {"GET", "/v1/executions?prefix=a%2F&status=running&status=failed", ""},
      {"GET", "/v1/keys/a%2Fdone/history?limit=5&offset=0", ""},
      {"POST", "/v1/keys/a%2Fk/force-release", R"({"reason":"fuzz"})", true},
      {"POST", "/v1/purge", R"({"older_than_ms":0,"statuses":["succeeded"]})", true},
      {"GET", "/data-jobs/for-team/a/jobs/k/executions?execution_status=running", ""},
      {"GET", "/healthz", "", false, false},
      {"GET", "/readyz", "", false, false},
      {"GET", "/metrics", ""},
  };
}

// Fills the store: a/k held with one caller in line, a/done with history.
std::int64_t seed_store(Store& store) {
  AcquireRequest held{.key = "a/k", .execution_id = "holder", .ttl = 600s};
  auto h = store.acquire(held);
  EXPECT_TRUE(h && h->outcome == AcquireOutcome::Granted);
  AcquireRequest waiter{.key = "a/k", .execution_id = "waiter-1", .queue = true, .queue_ttl = 600s};
  EXPECT_TRUE(store.acquire(waiter));
  AcquireRequest done{.key = "a/done", .execution_id = "done-1"};
  auto d = store.acquire(done);
  EXPECT_TRUE(d && d->outcome == AcquireOutcome::Granted);
  EXPECT_TRUE(d && store.release("a/done", d->lease.token, {}));
  return h ? h->lease.token : 0;
}

TEST(ServerFuzz, MutatedRequestsAre4xxAndChangeNothing) {
  TempDir dir;
  std::string tokens = dir.file("tokens");
  std::ofstream(tokens) << kAdmin << " fuzz admin *\n";
  ASSERT_EQ(::chmod(tokens.c_str(), 0600), 0);
  auto opened = open_store("sqlite://" + dir.file("aec.db"));
  ASSERT_TRUE(opened) << opened.error().to_string();
  auto t = TestServer::start(std::move(*opened),
                             {.header_timeout = 300ms, .idle_timeout = 5s, .tokens_file = tokens});
  ASSERT_TRUE(t.server);
  std::int64_t token = seed_store(*t.store);
  std::string before = snapshot(*t.store);
  std::vector<Base> all = bases(token, t.store->get("a/k")->version);

  std::uint32_t seed = std::random_device{}();
  if (const char* s = std::getenv("AEC_FUZZ_SEED")) {
    seed = static_cast<std::uint32_t>(std::strtoul(s, nullptr, 10));
  }
  std::cout << "fuzz seed " << seed << " (rerun with AEC_FUZZ_SEED=" << seed << ")\n";
  SCOPED_TRACE(fmt::format("AEC_FUZZ_SEED={}", seed));
  Mutator mutator(seed);
  std::map<int, int> statuses;
  std::array<int, kKinds> closed{};
  constexpr int kTotal = 1000, kBatch = 50;  // a batch in flight at once: timeouts overlap
  for (int done = 0; done < kTotal; done += kBatch) {
    std::vector<Mutant> mutants;
    std::vector<std::unique_ptr<RawConnection>> conns;
    for (int i = 0; i < kBatch; ++i) {
      mutants.push_back(mutator.mutate(all[mutator.pick(all.size())]));
      conns.push_back(std::make_unique<RawConnection>(t.port()));
      conns.back()->send(mutants.back().bytes);
    }
    for (int i = 0; i < kBatch; ++i) {
      const Mutant& m = mutants[i];
      HttpReply r = conns[i]->read_reply(5s);
      statuses[r.status]++;
      std::string shown =
          nlohmann::json(m.bytes).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
      if (r.status == HttpReply::kClosed) {
        closed[static_cast<int>(m.kind)]++;
        EXPECT_TRUE(may_close(m.kind)) << "closed without an answer: " << shown;
      } else {
        EXPECT_TRUE(r.status >= 400 && r.status < 500)
            << "status " << r.status << " for kind " << static_cast<int>(m.kind) << ": " << shown
            << " -> " << r.body;
      }
    }
  }
  for (auto [status, n] : statuses) {
    std::cout << "  status " << status << ": " << n << "\n";
  }
  EXPECT_EQ(t.call("GET", "/healthz").status, 200) << "the server did not survive";
  EXPECT_EQ(snapshot(*t.store), before) << "a mutated request changed the store";
  // The bases unmutated are valid (so the mutations, not the bases, made them fail).
  for (const Base& b : all) {
    HttpReply r = t.call(b.method, b.target, b.needs_token ? kAdmin : "", b.body);
    EXPECT_EQ(r.status, 200) << b.method << " " << b.target << ": " << r.body;
  }
}

}  // namespace
}  // namespace aec::testing
