#include "stores/dynamodb/dynamo_client.h"

#include <algorithm>
#include <random>
#include <thread>

#include <curl/curl.h>
#include <fmt/format.h>

#include "core/status_macros.h"
#include "stores/dynamodb/curl_body.h"

namespace aec::aws {
namespace {

using std::chrono::milliseconds;

constexpr std::size_t kMaxIdle = 16;
constexpr std::size_t kMaxAnswer = std::size_t{16} << 20;  // a Query page is at most 1 MB
constexpr milliseconds kFirstBackoff{25};
constexpr milliseconds kMaxBackoff{1'000};
constexpr std::string_view kTargetPrefix = "DynamoDB_20120810.";

// Between d/2 and d: clients throttled together do not come back in step.
milliseconds jittered(milliseconds d) {
  thread_local std::minstd_rand rng(std::random_device{}());
  return milliseconds(std::uniform_int_distribution<std::int64_t>(d.count() / 2, d.count())(rng));
}

// "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException" -> the part after '#'.
std::string short_type(std::string_view type) {
  std::size_t hash = type.rfind('#');
  return std::string(hash == std::string_view::npos ? type : type.substr(hash + 1));
}

bool refused_credentials(const DynamoError& e) {
  return e.type == "ExpiredTokenException" || e.type == "UnrecognizedClientException";
}

}  // namespace

bool retryable(const DynamoError& e) {
  return e.type == "ProvisionedThroughputExceededException" || e.type == "ThrottlingException" ||
         e.type == "RequestLimitExceeded";
}

struct DynamoClient::Handle {
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  char error[CURL_ERROR_SIZE] = {};

  Handle() = default;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() {
    curl_easy_cleanup(easy);
    curl_slist_free_all(headers);
  }
};

struct DynamoClient::Sent {
  long status = 0;  // NOLINT(google-runtime-int): libcurl's type
  std::string body;
};

DynamoClient::DynamoClient(DynamoOptions options) : options_(std::move(options)) {
  init_curl_once();
}

DynamoClient::~DynamoClient() = default;

std::unique_ptr<DynamoClient::Handle> DynamoClient::take() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      std::unique_ptr<Handle> h = std::move(idle_.back());
      idle_.pop_back();
      return h;
    }
  }
  auto h = std::make_unique<Handle>();
  h->easy = curl_easy_init();
  return h->easy != nullptr ? std::move(h) : nullptr;
}

void DynamoClient::give_back(std::unique_ptr<Handle> h) {
  std::lock_guard lock(mu_);
  if (idle_.size() < kMaxIdle) {
    idle_.push_back(std::move(h));
  }
}

Result<DynamoClient::Sent> DynamoClient::send_once(Handle& h, std::string_view action,
                                                   const std::string& body,
                                                   const Credentials& creds) {
  CURL* e = h.easy;
  curl_easy_reset(e);  // keeps the handle's kept-alive connection
  h.error[0] = '\0';
  curl_slist_free_all(h.headers);
  h.headers = nullptr;
  auto add = [&h](const std::string& line) {
    if (curl_slist* longer = curl_slist_append(h.headers, line.c_str()); longer != nullptr) {
      h.headers = longer;
    }
  };
  add("Content-Type: application/x-amz-json-1.0");
  add(fmt::format("X-Amz-Target: {}{}", kTargetPrefix, action));
  if (!creds.session_token.empty()) {
    add("X-Amz-Security-Token: " + creds.session_token);
  }
  if (!options_.fixed_amz_date.empty()) {
    add("X-Amz-Date: " + options_.fixed_amz_date);  // libcurl signs with the date it is given
  }
  std::string url = options_.endpoint + "/";
  std::string sigv4 = "aws:amz:" + options_.region + ":dynamodb";
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h.headers);
  curl_easy_setopt(e, CURLOPT_AWS_SIGV4, sigv4.c_str());
  curl_easy_setopt(e, CURLOPT_USERNAME, creds.access_key_id.c_str());
  curl_easy_setopt(e, CURLOPT_PASSWORD, creds.secret_access_key.c_str());
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h.error);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options_.connect_timeout.count()));
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout.count()));
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  // A body over 1 KiB makes libcurl ask "Expect: 100-continue" (DynamoDB answers it). Removing
  // the header with "Expect:" would list it among the signed headers though it is not sent, and
  // DynamoDB would refuse the signature: instead, do not wait long for the 100.
  curl_easy_setopt(e, CURLOPT_EXPECT_100_TIMEOUT_MS, 200L);
  curl_slist connect_to{};
  std::string connect_entry = options_.connect_to;
  if (!connect_entry.empty()) {
    connect_to.data = connect_entry.data();
    curl_easy_setopt(e, CURLOPT_CONNECT_TO, &connect_to);
  }
  Sent sent;
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, append_body<kMaxAnswer>);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &sent.body);
  CURLcode code = curl_easy_perform(e);
  if (code != CURLE_OK) {
    return unavailable(fmt::format("DynamoDB {} at {}: {}", action, options_.endpoint,
                                   h.error[0] != '\0' ? h.error : curl_easy_strerror(code)));
  }
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &sent.status);
  return sent;
}

Result<DynamoAnswer> DynamoClient::call(std::string_view action, const nlohmann::json& body) {
  std::string text = body.dump();
  auto start = std::chrono::steady_clock::now();
  milliseconds backoff = kFirstBackoff;
  bool fetched_again = false;
  for (;;) {
    AEC_ASSIGN_OR_RETURN(Credentials creds, options_.credentials->get());
    std::unique_ptr<Handle> h = take();
    if (h == nullptr) {
      return unavailable(fmt::format("DynamoDB {}: libcurl cannot make a handle", action));
    }
    Result<Sent> sent = send_once(*h, action, text, creds);
    if (!sent) {
      return sent.error();  // the connection went away: the handle (and it) are dropped
    }
    give_back(std::move(h));
    nlohmann::json answer = nlohmann::json::parse(sent->body, nullptr, false);
    if (sent->status == 200 && answer.is_object()) {
      return DynamoAnswer{std::move(answer), std::nullopt};
    }
    if (!answer.is_object() || !answer.contains("__type")) {
      std::string head = sent->body.substr(0, 200);
      std::replace_if(
          head.begin(), head.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
      return unavailable(fmt::format("DynamoDB {} at {}: HTTP {} that is not DynamoDB's: {}",
                                     action, options_.endpoint, sent->status, head));
    }
    DynamoError err;
    err.type = short_type(answer.value("__type", ""));
    err.message =
        answer.contains("message") ? answer.value("message", "") : answer.value("Message", "");
    err.body = std::move(answer);
    auto spent = std::chrono::steady_clock::now() - start;
    if (refused_credentials(err) && !fetched_again) {
      options_.credentials->invalidate();
      fetched_again = true;
      continue;
    }
    if (retryable(err) && spent + backoff < options_.retry_budget) {
      std::this_thread::sleep_for(jittered(backoff));  // backing off is the point
      backoff = std::min(backoff * 2, kMaxBackoff);
      continue;
    }
    return DynamoAnswer{nlohmann::json::object(), std::move(err)};
  }
}

}  // namespace aec::aws
