// DynamoClient: DynamoDB's JSON API over libcurl, each request signed with AWS Signature V4 by
// libcurl itself (CURLOPT_AWS_SIGV4). One call is one action ("PutItem", "UpdateItem", ...) with
// its JSON body; the answer is the JSON DynamoDB sent, or the error it named.
//
// Throttling (ProvisionedThroughputExceededException, ThrottlingException, RequestLimitExceeded,
// HTTP 5xx) is retried with jittered exponential backoff for up to retry_budget; a refused
// credential (ExpiredTokenException, UnrecognizedClientException) is fetched again once. Every
// other error, a failed condition first of all, is an answer and is never retried.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <aec/status.h>

#include "stores/dynamodb/aws_credentials.h"

namespace aec::aws {

struct DynamoOptions {
  std::string endpoint;  // "https://dynamodb.eu-west-1.amazonaws.com", "http://127.0.0.1:8000"
  std::string region;    // what the signature is scoped to
  std::shared_ptr<CredentialCache> credentials;
  std::chrono::milliseconds connect_timeout{3'000};
  std::chrono::milliseconds timeout{10'000};       // one request, connecting included
  std::chrono::milliseconds retry_budget{10'000};  // throttled requests are retried this long
  // Tests only (the signature's known-answer test): the request time as "20150830T123600Z"
  // instead of now, and a libcurl CONNECT_TO entry ("HOST:PORT:127.0.0.1:PORT2") that sends the
  // endpoint's host name to another address.
  std::string fixed_amz_date;
  std::string connect_to;
};

// An error DynamoDB answered: its type without the namespace ("ConditionalCheckFailedException"),
// its message, and the raw answer (for TransactionCanceledException's CancellationReasons and
// a failed condition's Item).
struct DynamoError {
  std::string type;
  std::string message;
  nlohmann::json body;
};

// A call's outcome as DynamoDB gave it: the answer, or the error it named. (What went wrong on
// the way there is the call's Status instead.)
struct DynamoAnswer {
  nlohmann::json body;  // an object when ok
  std::optional<DynamoError> error;
};

class DynamoClient {
 public:
  explicit DynamoClient(DynamoOptions options);
  ~DynamoClient();
  DynamoClient(const DynamoClient&) = delete;
  DynamoClient& operator=(const DynamoClient&) = delete;

  // Sends `action` with `body`. A Status error is a failure of the way there (the endpoint
  // cannot be reached: Unavailable; no credentials: PermissionDenied); DynamoDB's own errors
  // come back in DynamoAnswer::error. Thread-safe.
  Result<DynamoAnswer> call(std::string_view action, const nlohmann::json& body);

  const DynamoOptions& options() const { return options_; }

 private:
  struct Handle;
  struct Sent;

  std::unique_ptr<Handle> take();
  void give_back(std::unique_ptr<Handle> h);
  Result<Sent> send_once(Handle& h, std::string_view action, const std::string& body,
                         const Credentials& creds);

  const DynamoOptions options_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Handle>> idle_;  // guarded by mu_: kept-alive connections
};

// Throttling and server-side errors worth sending again.
bool retryable(const DynamoError& e);

}  // namespace aec::aws
