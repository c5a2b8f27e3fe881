// AWS credentials and region for the dynamodb:// store, found the way AWS's own tools find them:
//
//   1. the URL's profile= alone, when given (like `aws --profile NAME`);
//   2. the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (Lambda
//      sets them);
//   3. the shared files' profile: $AWS_PROFILE, else "default", in ~/.aws/credentials
//      ($AWS_SHARED_CREDENTIALS_FILE) and ~/.aws/config ($AWS_CONFIG_FILE, sections
//      "[profile NAME]");
//   4. the container endpoint (ECS and Fargate): $AWS_CONTAINER_CREDENTIALS_RELATIVE_URI on
//      169.254.170.2, or $AWS_CONTAINER_CREDENTIALS_FULL_URI, with the token of
//      $AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or $AWS_CONTAINER_AUTHORIZATION_TOKEN;
//   5. the EC2 instance metadata service, IMDSv2 (a session token first), unless
//      $AWS_EC2_METADATA_DISABLED is true; $AWS_EC2_METADATA_SERVICE_ENDPOINT moves it.
//
// Temporary credentials (4, 5, or a session token) carry their expiry; CredentialCache fetches
// again before it. A secret is never logged nor put in a message.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <aec/clock.h>
#include <aec/status.h>

namespace aec::aws {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;   // never logged nor put in a message
  std::string session_token;       // empty for long-term keys
  std::optional<SysTime> expires;  // temporary credentials: fetch again before this
  std::string source;              // where they came from, for messages: "environment", ...
};

// Where the chain looks. The defaults are the process's environment and home directory.
struct CredentialSources {
  // Reads an environment variable; nullopt when unset. Default: std::getenv.
  std::function<std::optional<std::string>(const std::string&)> getenv;
  std::string home;     // for ~/.aws; default $HOME, else the user's home directory
  std::string profile;  // the URL's profile=; empty: none named there
  // The container endpoint's host for a relative URI; the instance metadata service's default.
  std::string container_host = "http://169.254.170.2";
  std::string imds_endpoint = "http://169.254.169.254";
  std::chrono::milliseconds metadata_timeout{1'000};  // each call to 4 or 5 (connect and answer)
};

// `sources` with every default filled in.
CredentialSources with_defaults(CredentialSources sources);

// The region: `url_region` when not empty, else $AWS_REGION, $AWS_DEFAULT_REGION, the profile's
// region in the config file, else "eu-west-1". InvalidArgument for a config file that cannot be
// read.
Result<std::string> find_region(std::string_view url_region, const CredentialSources& sources);

// Runs the chain once. Errors: PermissionDenied when no source has credentials (the message
// names each place looked at and why it had none); InvalidArgument for a named profile that is
// missing or incomplete, or a malformed file; Unavailable when an endpoint that is configured
// (4) does not answer.
Result<Credentials> find_credentials(const CredentialSources& sources);

// Credentials kept between calls: fetched on first use, again within kRefreshAhead of their
// expiry, and after invalidate() (the service refused them). Thread-safe; callers share one.
class CredentialCache {
 public:
  static constexpr std::chrono::minutes kRefreshAhead{5};

  CredentialCache(CredentialSources sources, std::shared_ptr<Clock> clock);

  Result<Credentials> get();
  void invalidate();

 private:
  const CredentialSources sources_;
  const std::shared_ptr<Clock> clock_;
  std::mutex mu_;
  std::optional<Credentials> current_;  // guarded by mu_
};

// Parses one AWS INI file (the credentials or the config file): the settings of section
// `section` ("default", "profile dev", "dev"), or nullopt when it has no such section. Comment
// lines start with '#' or ';'; indented lines continue a nested setting and are skipped.
std::optional<std::map<std::string, std::string>> ini_section(std::string_view text,
                                                              std::string_view section);

}  // namespace aec::aws
