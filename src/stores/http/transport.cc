#include "stores/http/transport.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <random>

#include <fmt/format.h>

#include "core/duration.h"
#include "core/random.h"

namespace aec::http {
namespace {

constexpr milliseconds kFirstBackoff{50};
constexpr milliseconds kMaxBackoff{800};

// Between d/2 and d, so clients refused together do not come back in step.
milliseconds jittered(milliseconds d) {
  thread_local std::minstd_rand rng(static_cast<std::minstd_rand::result_type>(random64()));
  std::uniform_int_distribution<std::int64_t> dist(d.count() / 2, d.count());
  return milliseconds(dist(rng));
}

// Sleeps for `d` of real time (a network backoff, not a deadline of the store's clock). False
// when `stop` was requested.
bool pause_for(milliseconds d, const std::stop_token& stop) {
  std::mutex mu;
  std::condition_variable_any cv;
  std::unique_lock lock(mu);
  cv.wait_for(lock, stop, d, [] { return false; });
  return !stop.stop_requested();
}

}  // namespace

Result<HttpAnswer> Transport::send(const HttpCall& call) {
  auto start = std::chrono::steady_clock::now();
  milliseconds backoff = kFirstBackoff;
  // An earlier attempt may have reached the server: the answer may be to a second copy.
  bool sent_before = false;
  auto cancelled = [&] {
    return Status(Code::Cancelled,
                  fmt::format("{} {}{} cancelled", call.method, options_.base_url, call.target));
  };
  for (int attempts = 1;; ++attempts) {
    if (call.stop.stop_requested()) {
      return cancelled();
    }
    Try t = try_once(call);
    if (t.end == Try::End::Cancelled) {
      return cancelled();
    }
    if (t.end == Try::End::Answered) {
      t.answer.reconnected = t.reconnected || sent_before;
      return std::move(t.answer);
    }
    drop_idle();
    auto spent = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start);
    milliseconds pause = jittered(backoff);
    if (t.end != Try::End::NotSent || spent + pause > options_.retry_budget) {
      return failure(call, t, attempts, spent);
    }
    // "Could not connect" ends a try that may have sent the request on a reused connection
    // first, and tried to connect only for the resend: aecd killed right after it acted, and not
    // listening yet when the transport came back (found by the reliability suite's aecd
    // crashes, T8).
    sent_before = sent_before || t.reconnected;
    if (!pause_for(pause, call.stop)) {
      return cancelled();
    }
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

Status Transport::failure(const HttpCall& call, const Try& t, int attempts,
                          milliseconds spent) const {
  std::string where = fmt::format("{} {}{}", call.method, options_.base_url, call.target);
  if (t.end == Try::End::NotSent) {
    return unavailable(
        fmt::format("cannot reach aecd at {}: {} ({} attempts in {}); is aecd "
                    "running there?",
                    options_.base_url, t.error, attempts, format_duration(spent)));
  }
  switch (t.why) {
    case Try::Why::Untrusted:
      return unavailable(
          fmt::format("{}: aecd's TLS certificate is not trusted ({}): add ?cacert=FILE to the "
                      "store URL, FILE the PEM certificate of the CA that signed it (or the "
                      "self-signed certificate itself)",
                      where, t.error));
    case Try::Why::BadCaFile:
      return unavailable(fmt::format(
          "{}: cannot use the certificates to trust ({}): check the file of ?cacert=", where,
          t.error));
    case Try::Why::Silent:
      return unavailable(fmt::format(
          "{}: nothing from aecd for {} though it was asked for a heartbeat every {}: the "
          "connection is dead (half open, or aecd is stuck)",
          where, format_duration(call.heartbeat * kSilentBeats), format_duration(call.heartbeat)));
    case Try::Why::TimedOut:
      return unavailable(fmt::format("{}: no answer within {}: {}", where,
                                     format_duration(call.timeout), t.error));
    case Try::Why::Other:
      break;
  }
  return unavailable(fmt::format("{} failed: {}", where, t.error));
}

}  // namespace aec::http
