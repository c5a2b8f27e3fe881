#include "stores/http/curl_transport.h"

#include <curl/curl.h>
#include <fmt/format.h>

namespace aec::http {
namespace {

constexpr std::size_t kMaxIdle = 8;  // idle handles (and so connections) kept for reuse
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

CurlTransport::CurlTransport(TransportOptions options) : Transport(std::move(options)) {}

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
  if (!options().token.empty()) {
    h.headers = append_header(h.headers, "Authorization: Bearer " + options().token);
  }
  if (call.heartbeat > milliseconds(0)) {
    h.headers =
        append_header(h.headers, fmt::format("Aec-Heartbeat-Ms: {}", call.heartbeat.count()));
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &attempt);
  }
  std::string url = options().base_url + call.target;  // libcurl copies it
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h.headers);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h.error);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options().connect_timeout.count()));
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(call.timeout.count()));
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);  // parked calls sit idle for minutes
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &attempt);
  if (!options().cacert.empty()) {
    curl_easy_setopt(e, CURLOPT_CAINFO, options().cacert.c_str());
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

Try CurlTransport::try_once(const HttpCall& call) {
  Try t;
  std::unique_ptr<Handle> h = take();
  if (h == nullptr) {
    t.error = "libcurl cannot make a handle (out of memory?)";
    return t;
  }
  Attempt a = perform(*h, call);
  if (a.code == CURLE_OK || a.cancelled) {
    give_back(std::move(h));
  }
  t.reconnected = a.reconnected;
  if (a.cancelled) {
    t.end = Try::End::Cancelled;
  } else if (a.code == CURLE_OK) {
    t.end = Try::End::Answered;
    t.answer = HttpAnswer{.status = a.status, .body = std::move(a.body)};
  } else {
    t.end = certainly_not_sent(a.code) ? Try::End::NotSent : Try::End::Failed;
    t.error = a.error.empty() ? curl_easy_strerror(a.code) : a.error;
    if (a.silent) {
      t.why = Try::Why::Silent;
    } else if (a.code == CURLE_PEER_FAILED_VERIFICATION) {
      t.why = Try::Why::Untrusted;
    } else if (a.code == CURLE_SSL_CACERT_BADFILE) {
      t.why = Try::Why::BadCaFile;
    } else if (a.code == CURLE_OPERATION_TIMEDOUT) {
      t.why = Try::Why::TimedOut;
    }
  }
  return t;
}

void CurlTransport::drop_idle() {
  std::lock_guard lock(mu_);
  idle_.clear();
}

}  // namespace aec::http
