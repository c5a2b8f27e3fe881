#include "stores/http/curl_transport.h"

#include <algorithm>
#include <condition_variable>
#include <random>

#include <curl/curl.h>
#include <fmt/format.h>

#include "core/duration.h"

namespace aec::http {
namespace {

constexpr std::size_t kMaxIdle = 8;  // idle handles (and so connections) kept for reuse
constexpr std::size_t kMaxAnswerBytes = std::size_t{64} << 20;
constexpr milliseconds kFirstBackoff{50};
constexpr milliseconds kMaxBackoff{800};
// The longest curl_multi_poll sleeps between checks; a stop request wakes it at once anyway.
constexpr int kPollMs = 1'000;

void init_curl_once() {
  // Thread-safe since libcurl 7.84; done once, before the first handle, and never undone.
  static const CURLcode init = curl_global_init(CURL_GLOBAL_DEFAULT);
  (void)init;
}

}  // namespace

struct CurlTransport::Attempt {
  CURLcode code = CURLE_OK;
  long status = 0;  // NOLINT(google-runtime-int)
  std::string body;
  std::string error;  // libcurl's words for a failure
  bool cancelled = false;
  bool reconnected = false;  // see HttpAnswer::reconnected
  // When a byte of the answer (a heartbeat included) last came, or the call began; and whether
  // the call was given up for the silence since.
  std::chrono::steady_clock::time_point heard = std::chrono::steady_clock::now();
  bool silent = false;
};

namespace {

std::size_t on_data(char* data, std::size_t size, std::size_t n, void* user) {
  auto* a = static_cast<CurlTransport::Attempt*>(user);
  std::size_t bytes = size * n;
  a->heard = std::chrono::steady_clock::now();
  if (a->body.size() + bytes > kMaxAnswerBytes) {
    return 0;  // ends the transfer with CURLE_WRITE_ERROR
  }
  a->body.append(data, bytes);
  return bytes;
}

// Every header line (a streamed answer's head comes first, its body after): notes that the
// server is there.
std::size_t on_header(char*, std::size_t size, std::size_t n, void* user) {
  static_cast<CurlTransport::Attempt*>(user)->heard = std::chrono::steady_clock::now();
  return size * n;
}

// Failures after which the server certainly never saw the request, so sending it again cannot
// make it happen twice.
bool certainly_not_sent(CURLcode code) {
  return code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST ||
         code == CURLE_COULDNT_RESOLVE_PROXY;
}

// Between d/2 and d, so clients refused together do not come back in step.
milliseconds jittered(milliseconds d) {
  thread_local std::minstd_rand rng(std::random_device{}());
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

curl_slist* append_header(curl_slist* list, const std::string& header) {
  curl_slist* longer = curl_slist_append(list, header.c_str());
  return longer != nullptr ? longer : list;  // out of memory: go without this header
}

}  // namespace

struct CurlTransport::Handle {
  CURL* easy = nullptr;
  CURLM* multi = nullptr;  // owns the connection cache: the kept-alive connection lives here
  curl_slist* headers = nullptr;
  char error[CURL_ERROR_SIZE] = {};
  bool kept_alive = false;  // the last transfer ended well: its connection may still be cached

  Handle() = default;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() {
    curl_easy_cleanup(easy);
    curl_multi_cleanup(multi);
    curl_slist_free_all(headers);
  }
};

CurlTransport::CurlTransport(TransportOptions options) : options_(std::move(options)) {}

CurlTransport::~CurlTransport() = default;

std::unique_ptr<CurlTransport::Handle> CurlTransport::take() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      std::unique_ptr<Handle> h = std::move(idle_.back());
      idle_.pop_back();
      return h;
    }
  }
  init_curl_once();
  auto h = std::make_unique<Handle>();
  h->easy = curl_easy_init();
  h->multi = curl_multi_init();
  if (h->easy == nullptr || h->multi == nullptr) {
    return nullptr;
  }
  curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, 1L);
  return h;
}

void CurlTransport::give_back(std::unique_ptr<Handle> handle) {
  std::lock_guard lock(mu_);
  if (idle_.size() < kMaxIdle) {
    idle_.push_back(std::move(handle));
  }
}

void CurlTransport::configure(Handle& h, const HttpCall& call, Attempt& attempt) {
  CURL* e = h.easy;
  curl_easy_reset(e);  // keeps the connection, which lives in h.multi
  h.error[0] = '\0';
  curl_slist_free_all(h.headers);
  h.headers = append_header(nullptr, "Accept: application/json");
  h.headers = append_header(h.headers, "Expect:");  // no 100-continue round trip
  if (call.method == "POST") {
    h.headers = append_header(h.headers, "Content-Type: application/json");
  }
  if (!options_.token.empty()) {
    h.headers = append_header(h.headers, "Authorization: Bearer " + options_.token);
  }
  if (call.heartbeat > milliseconds(0)) {
    h.headers =
        append_header(h.headers, fmt::format("Aec-Heartbeat-Ms: {}", call.heartbeat.count()));
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &attempt);
  }
  std::string url = options_.base_url + call.target;  // libcurl copies it
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h.headers);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h.error);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options_.connect_timeout.count()));
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(call.timeout.count()));
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);  // parked calls sit idle for minutes
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &attempt);
  if (!options_.cacert.empty()) {
    curl_easy_setopt(e, CURLOPT_CAINFO, options_.cacert.c_str());
  }
  if (call.method == "POST") {
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, call.body.data());  // not copied: call outlives it
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(call.body.size()));
  } else if (call.method == "DELETE") {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "DELETE");
  }
}

namespace {

// Runs the transfer on `multi` to its end, until `stop` is requested (a.cancelled), or until
// nothing has come for `silence` (a.silent; 0: no limit).
void drive(CURLM* multi, const std::stop_token& stop, milliseconds silence,
           CurlTransport::Attempt& a) {
  CURLcode& code = a.code;
  for (;;) {
    int running = 0;
    if (curl_multi_perform(multi, &running) != CURLM_OK) {
      code = CURLE_OUT_OF_MEMORY;  // the only way a single transfer's perform fails
      return;
    }
    if (running == 0) {
      break;
    }
    if (stop.stop_requested()) {
      a.cancelled = true;
      return;
    }
    if (silence > milliseconds(0) && std::chrono::steady_clock::now() - a.heard > silence) {
      a.silent = true;
      code = CURLE_OPERATION_TIMEDOUT;
      return;
    }
    curl_multi_poll(multi, nullptr, 0, kPollMs, nullptr);
  }
  int left = 0;
  while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
    if (m->msg == CURLMSG_DONE) {
      code = m->data.result;
    }
  }
}

}  // namespace

CurlTransport::Attempt CurlTransport::perform(Handle& h, const HttpCall& call) {
  Attempt a;
  configure(h, call, a);
  if (curl_multi_add_handle(h.multi, h.easy) != CURLM_OK) {
    a.code = CURLE_FAILED_INIT;
    return a;
  }
  {
    // A stop request wakes curl_multi_poll at once (an idle parked call would otherwise notice
    // only at the next poll timeout). The callback ends before the handle goes back to the pool.
    std::stop_callback wake(call.stop, [&h] { curl_multi_wakeup(h.multi); });
    drive(h.multi, call.stop, call.heartbeat * kSilentBeats, a);
  }
  curl_multi_remove_handle(h.multi, h.easy);  // mid-transfer: aborts it, closing the connection
  curl_easy_getinfo(h.easy, CURLINFO_RESPONSE_CODE, &a.status);
  long connects = 0;  // NOLINT(google-runtime-int): libcurl's type
  curl_easy_getinfo(h.easy, CURLINFO_NUM_CONNECTS, &connects);
  // A kept-alive handle whose transfer failed to connect had a reused connection first:
  // libcurl may have sent the request on it, then failed to connect for its resend.
  a.reconnected = h.kept_alive && (connects > 0 || a.code != CURLE_OK);
  h.kept_alive = a.code == CURLE_OK;
  a.error = h.error;
  return a;
}

Result<HttpAnswer> CurlTransport::send(const HttpCall& call) {
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
    std::unique_ptr<Handle> h = take();
    if (h == nullptr) {
      return unavailable(fmt::format("{} {}{}: libcurl cannot make a handle (out of memory?)",
                                     call.method, options_.base_url, call.target));
    }
    Attempt a = perform(*h, call);
    if (a.code == CURLE_OK || a.cancelled) {
      give_back(std::move(h));
    } else {
      // The way to the server failed under this connection (timed out, reset): the idle ones
      // share that way and may be dead without knowing it (half open after a network fault, a
      // NAT that dropped them). The next call connects afresh instead of waiting out its timeout
      // on one of them (found by the reliability suite's half-open partition, T5).
      std::lock_guard lock(mu_);
      idle_.clear();
    }
    if (a.cancelled) {
      return cancelled();
    }
    if (a.code == CURLE_OK) {
      return HttpAnswer{a.status, std::move(a.body), a.reconnected || sent_before};
    }
    auto spent = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start);
    milliseconds pause = jittered(backoff);
    if (!certainly_not_sent(a.code) || spent + pause > options_.retry_budget) {
      return failure(call, a, attempts, spent);
    }
    // "Could not connect" ends an attempt that may have sent the request on a reused
    // connection first, and tried to connect only for libcurl's resend: aecd killed right after
    // it acted, and not listening yet when libcurl came back (found by the reliability suite's
    // aecd crashes, T8).
    sent_before = sent_before || a.reconnected;
    if (!pause_for(pause, call.stop)) {
      return cancelled();
    }
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

Status CurlTransport::failure(const HttpCall& call, const Attempt& a, int attempts,
                              milliseconds spent) const {
  std::string what = a.error.empty() ? curl_easy_strerror(a.code) : a.error;
  std::string where = fmt::format("{} {}{}", call.method, options_.base_url, call.target);
  if (certainly_not_sent(a.code)) {
    return unavailable(
        fmt::format("cannot reach aecd at {}: {} ({} attempts in {}); is aecd "
                    "running there?",
                    options_.base_url, what, attempts, format_duration(spent)));
  }
  if (a.code == CURLE_PEER_FAILED_VERIFICATION) {
    return unavailable(
        fmt::format("{}: aecd's TLS certificate is not trusted ({}): add ?cacert=FILE to the "
                    "store URL, FILE the PEM certificate of the CA that signed it (or the "
                    "self-signed certificate itself)",
                    where, what));
  }
  if (a.code == CURLE_SSL_CACERT_BADFILE) {
    return unavailable(fmt::format(
        "{}: cannot use the certificates to trust ({}): check the file of ?cacert=", where, what));
  }
  if (a.silent) {
    return unavailable(fmt::format(
        "{}: nothing from aecd for {} though it was asked for a heartbeat every {}: the "
        "connection is dead (half open, or aecd is stuck)",
        where, format_duration(call.heartbeat * kSilentBeats), format_duration(call.heartbeat)));
  }
  if (a.code == CURLE_OPERATION_TIMEDOUT) {
    return unavailable(
        fmt::format("{}: no answer within {}: {}", where, format_duration(call.timeout), what));
  }
  return unavailable(fmt::format("{} failed: {}", where, what));
}

}  // namespace aec::http
