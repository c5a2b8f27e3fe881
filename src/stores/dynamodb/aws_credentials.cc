#include "stores/dynamodb/aws_credentials.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pwd.h>
#include <unistd.h>

#include "api/json_fields.h"
#include "stores/dynamodb/metadata_http.h"

namespace aec::aws {
namespace {

using std::chrono::milliseconds;

constexpr std::string_view kDefaultRegion = "eu-west-1";
constexpr std::string_view kImdsTokenTtl = "X-aws-ec2-metadata-token-ttl-seconds: 21600";

std::string trim(std::string_view s) {
  std::size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) {
    return "";
  }
  std::size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string env_or(const CredentialSources& s, const std::string& name, std::string fallback) {
  std::optional<std::string> v = s.getenv(name);
  return v && !v->empty() ? *v : std::move(fallback);
}

// The file's text; nullopt when it does not exist. Unreadable for another reason: an error.
Result<std::optional<std::string>> read_if_there(const std::string& path) {
  if (access(path.c_str(), F_OK) != 0) {
    return std::optional<std::string>();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return invalid_argument(fmt::format("cannot read {}: check its permissions", path));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return std::optional<std::string>(text.str());
}

// One profile's settings in the two shared files.
struct Profile {
  std::string name;
  bool named = false;  // named by the URL or $AWS_PROFILE, not the implicit "default"
  std::string credentials_path;
  std::string config_path;
  std::optional<std::map<std::string, std::string>> credentials;  // its section, if any
  std::optional<std::map<std::string, std::string>> config;
};

Result<Profile> load_profile(const CredentialSources& s) {
  Profile p;
  p.named = !s.profile.empty() || s.getenv("AWS_PROFILE").value_or("") != "";
  p.name = !s.profile.empty() ? s.profile : env_or(s, "AWS_PROFILE", "default");
  p.credentials_path = env_or(s, "AWS_SHARED_CREDENTIALS_FILE", s.home + "/.aws/credentials");
  p.config_path = env_or(s, "AWS_CONFIG_FILE", s.home + "/.aws/config");
  auto creds = read_if_there(p.credentials_path);
  if (!creds) {
    return creds.error();
  }
  auto config = read_if_there(p.config_path);
  if (!config) {
    return config.error();
  }
  if (*creds) {
    p.credentials = ini_section(**creds, p.name);
  }
  if (*config) {
    p.config = ini_section(**config, p.name == "default" ? "default" : "profile " + p.name);
  }
  return p;
}

std::string setting(const Profile& p, const std::string& name) {
  for (const auto* section : {&p.credentials, &p.config}) {
    if (*section) {
      if (auto it = (*section)->find(name); it != (*section)->end() && !it->second.empty()) {
        return it->second;
      }
    }
  }
  return "";
}

// The profile's keys; nullopt (with `why`) when it has none and was not named.
Result<std::optional<Credentials>> profile_credentials(const Profile& p, std::string& why) {
  std::string where = fmt::format("{} or {}", p.credentials_path, p.config_path);
  if (!p.credentials && !p.config) {
    if (p.named) {
      return invalid_argument(
          fmt::format("AWS profile '{}' is in neither {}: name a profile that exists (the "
                      "URL's profile=, or $AWS_PROFILE)",
                      p.name, fmt::format("{} nor {}", p.credentials_path, p.config_path)));
    }
    why = fmt::format("no profile 'default' in {}", where);
    return std::optional<Credentials>();
  }
  Credentials c;
  c.access_key_id = setting(p, "aws_access_key_id");
  c.secret_access_key = setting(p, "aws_secret_access_key");
  c.session_token = setting(p, "aws_session_token");
  c.source = fmt::format("profile '{}'", p.name);
  if (!c.access_key_id.empty() && !c.secret_access_key.empty()) {
    return std::optional<Credentials>(std::move(c));
  }
  for (const char* unsupported : {"role_arn", "credential_process", "sso_session", "sso_start_url",
                                  "web_identity_token_file"}) {
    if (!setting(p, unsupported).empty()) {
      return invalid_argument(fmt::format(
          "AWS profile '{}' gets its credentials through {}, which aec does not do: give it "
          "aws_access_key_id and aws_secret_access_key, or export them (for example with `aws "
          "configure export-credentials --profile {} --format env`)",
          p.name, unsupported, p.name));
    }
  }
  if (!c.access_key_id.empty() || !c.secret_access_key.empty() || p.named) {
    return invalid_argument(
        fmt::format("AWS profile '{}' in {} needs both aws_access_key_id and aws_secret_access_key",
                    p.name, where));
  }
  why = fmt::format("profile 'default' in {} has no keys", where);
  return std::optional<Credentials>();
}

// {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}: the answer of the container
// endpoint and of the instance metadata service.
Result<Credentials> parse_endpoint_answer(const std::string& body, const std::string& source) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  auto text = [&](const char* name) -> std::string {
    if (!j.is_object()) {
      return "";
    }
    auto it = j.find(name);
    return it != j.end() && it->is_string() ? it->get<std::string>() : "";
  };
  Credentials c;
  c.access_key_id = text("AccessKeyId");
  c.secret_access_key = text("SecretAccessKey");
  c.session_token = text("Token");
  c.source = source;
  if (c.access_key_id.empty() || c.secret_access_key.empty()) {
    return unavailable(
        fmt::format("{} answered without AccessKeyId and SecretAccessKey (an answer of {} bytes)",
                    source, body.size()));
  }
  if (std::string expiration = text("Expiration"); !expiration.empty()) {
    c.expires = wire::parse_time(expiration);
    if (!c.expires) {
      return unavailable(
          fmt::format("{} answered an Expiration that is not an RFC 3339 time", source));
    }
  }
  return c;
}

// GET `url` of a credential endpoint and read its answer (`source` names it in messages).
Result<std::optional<Credentials>> fetch_from(const std::string& url,
                                              const std::vector<std::string>& headers,
                                              const std::string& source,
                                              const CredentialSources& s) {
  auto reply = metadata_request("GET", url, headers, s.metadata_timeout);
  if (!reply) {
    return unavailable(fmt::format("{} did not answer: {}", source, reply.error().message()));
  }
  if (reply->status != 200) {
    return unavailable(fmt::format("{} answered HTTP {}", source, reply->status));
  }
  auto c = parse_endpoint_answer(reply->body, source);
  if (!c) {
    return c.error();
  }
  return std::optional<Credentials>(std::move(*c));
}

bool plain_http_allowed(std::string_view url) {
  // The SDKs' rule: plain http only to the container endpoints' own addresses or loopback.
  std::string_view rest = url.substr(7);
  std::string_view host = rest.substr(0, rest.find_first_of(":/"));
  if (rest.starts_with('[')) {
    host = rest.substr(0, rest.find(']') + 1);
  }
  return host == "localhost" || host.starts_with("127.") || host == "[::1]" ||
         host == "169.254.170.2" || host == "169.254.170.23" || host == "[fd00:ec2::23]";
}

Result<std::optional<Credentials>> container_credentials(const CredentialSources& s,
                                                         std::string& why) {
  std::string relative = env_or(s, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "");
  std::string full = env_or(s, "AWS_CONTAINER_CREDENTIALS_FULL_URI", "");
  if (relative.empty() && full.empty()) {
    why = "no container endpoint ($AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and _FULL_URI unset)";
    return std::optional<Credentials>();
  }
  std::string url = !relative.empty() ? s.container_host + relative : full;
  if (relative.empty()) {
    if (!full.starts_with("https://") && !full.starts_with("http://")) {
      return invalid_argument(fmt::format(
          "$AWS_CONTAINER_CREDENTIALS_FULL_URI '{}' is not an http:// or https:// URL", full));
    }
    if (full.starts_with("http://") && !plain_http_allowed(full)) {
      return invalid_argument(fmt::format(
          "$AWS_CONTAINER_CREDENTIALS_FULL_URI '{}': plain http only to loopback or the "
          "container endpoints (169.254.170.2, 169.254.170.23); use https",
          full));
    }
  }
  std::vector<std::string> headers;
  std::string token;
  if (std::string file = env_or(s, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", ""); !file.empty()) {
    auto text = read_if_there(file);
    if (!text || !*text) {
      return invalid_argument(
          fmt::format("cannot read $AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {}", file));
    }
    token = trim(**text);
  } else {
    token = env_or(s, "AWS_CONTAINER_AUTHORIZATION_TOKEN", "");
  }
  if (token.find_first_of("\r\n") != std::string::npos) {
    return invalid_argument("the container authorization token holds a line break");
  }
  if (!token.empty()) {
    headers.push_back("Authorization: " + token);
  }
  return fetch_from(url, headers, fmt::format("the container credential endpoint {}", url), s);
}

Result<std::optional<Credentials>> instance_credentials(const CredentialSources& s,
                                                        std::string& why) {
  if (lower(env_or(s, "AWS_EC2_METADATA_DISABLED", "")) == "true") {
    why = "instance metadata disabled ($AWS_EC2_METADATA_DISABLED)";
    return std::optional<Credentials>();
  }
  std::string base = env_or(s, "AWS_EC2_METADATA_SERVICE_ENDPOINT", s.imds_endpoint);
  while (base.ends_with('/')) {
    base.pop_back();
  }
  auto token = metadata_request("PUT", base + "/latest/api/token", {std::string(kImdsTokenTtl)},
                                s.metadata_timeout);
  if (!token || token->status != 200) {
    why = fmt::format("no instance metadata service at {} ({})", base,
                      token ? fmt::format("HTTP {}", token->status) : token.error().message());
    return std::optional<Credentials>();
  }
  std::vector<std::string> headers = {"X-aws-ec2-metadata-token: " + trim(token->body)};
  std::string roles_url = base + "/latest/meta-data/iam/security-credentials/";
  auto roles = metadata_request("GET", roles_url, headers, s.metadata_timeout);
  if (!roles || roles->status != 200) {
    why = fmt::format("the instance at {} has no IAM role ({})", base,
                      roles ? fmt::format("HTTP {}", roles->status) : roles.error().message());
    return std::optional<Credentials>();
  }
  std::string role = trim(roles->body.substr(0, roles->body.find('\n')));
  if (role.empty() || role.find_first_of("/?#") != std::string::npos) {
    return unavailable(
        fmt::format("the instance metadata service at {} named no usable IAM role", base));
  }
  return fetch_from(roles_url + role, headers,
                    fmt::format("the instance metadata service at {} (role {})", base, role), s);
}

}  // namespace

std::optional<std::map<std::string, std::string>> ini_section(std::string_view text,
                                                              std::string_view section) {
  std::optional<std::map<std::string, std::string>> out;
  bool inside = false;
  std::istringstream lines{std::string(text)};
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
      continue;  // a nested setting's continuation ("s3 =\n  max_concurrent_requests = 4")
    }
    std::string t = trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') {
      continue;
    }
    if (t.front() == '[' && t.back() == ']') {
      std::string name = trim(std::string_view(t).substr(1, t.size() - 2));
      // "[profile  dev]" is "[profile dev]"
      if (name.starts_with("profile ")) {
        name = "profile " + trim(std::string_view(name).substr(8));
      }
      inside = name == section;
      if (inside && !out) {
        out.emplace();
      }
      continue;
    }
    std::size_t eq = t.find('=');
    if (inside && eq != std::string::npos) {
      (*out)[lower(trim(std::string_view(t).substr(0, eq)))] =
          trim(std::string_view(t).substr(eq + 1));
    }
  }
  return out;
}

CredentialSources with_defaults(CredentialSources s) {
  if (!s.getenv) {
    s.getenv = [](const std::string& name) -> std::optional<std::string> {
      const char* v = std::getenv(name.c_str());
      return v != nullptr ? std::optional<std::string>(v) : std::nullopt;
    };
  }
  if (s.home.empty()) {
    if (std::optional<std::string> home = s.getenv("HOME"); home && home->starts_with('/')) {
      s.home = *home;
    } else if (const passwd* pw = getpwuid(geteuid()); pw != nullptr && pw->pw_dir != nullptr) {
      s.home = pw->pw_dir;
    }
  }
  return s;
}

Result<std::string> find_region(std::string_view url_region, const CredentialSources& sources) {
  if (!url_region.empty()) {
    return std::string(url_region);
  }
  CredentialSources s = with_defaults(sources);
  for (const char* name : {"AWS_REGION", "AWS_DEFAULT_REGION"}) {
    if (std::string v = env_or(s, name, ""); !v.empty()) {
      return v;
    }
  }
  auto p = load_profile(s);
  if (!p) {
    return p.error();
  }
  if (p->config) {
    if (auto it = p->config->find("region"); it != p->config->end() && !it->second.empty()) {
      return it->second;
    }
  }
  return std::string(kDefaultRegion);
}

Result<Credentials> find_credentials(const CredentialSources& sources) {
  CredentialSources s = with_defaults(sources);
  std::vector<std::string> looked;
  if (s.profile.empty()) {
    std::string id = env_or(s, "AWS_ACCESS_KEY_ID", "");
    std::string secret = env_or(s, "AWS_SECRET_ACCESS_KEY", "");
    if (!id.empty() && !secret.empty()) {
      return Credentials{.access_key_id = id,
                         .secret_access_key = secret,
                         .session_token = env_or(s, "AWS_SESSION_TOKEN", ""),
                         .expires = std::nullopt,
                         .source = "the environment ($AWS_ACCESS_KEY_ID)"};
    }
    if (!id.empty() || !secret.empty()) {
      return invalid_argument(
          fmt::format("{} is set but {} is not: set both, or neither",
                      id.empty() ? "$AWS_SECRET_ACCESS_KEY" : "$AWS_ACCESS_KEY_ID",
                      id.empty() ? "$AWS_ACCESS_KEY_ID" : "$AWS_SECRET_ACCESS_KEY"));
    }
    looked.emplace_back("no $AWS_ACCESS_KEY_ID");
  }
  auto profile = load_profile(s);
  if (!profile) {
    return profile.error();
  }
  std::string why;
  auto from_profile = profile_credentials(*profile, why);
  if (!from_profile) {
    return from_profile.error();
  }
  if (*from_profile) {
    return std::move(**from_profile);
  }
  looked.push_back(why);
  for (auto* step : {&container_credentials, &instance_credentials}) {
    auto got = (*step)(s, why);
    if (!got) {
      return got.error();
    }
    if (*got) {
      return std::move(**got);
    }
    looked.push_back(why);
  }
  return Status(Code::PermissionDenied,
                fmt::format("no AWS credentials found ({}): set $AWS_ACCESS_KEY_ID and "
                            "$AWS_SECRET_ACCESS_KEY, or a profile in ~/.aws/credentials "
                            "($AWS_PROFILE, or the URL's profile=), or run where a container or "
                            "instance role gives them",
                            fmt::join(looked, "; ")));
}

CredentialCache::CredentialCache(CredentialSources sources, std::shared_ptr<Clock> clock)
    : sources_(with_defaults(std::move(sources))), clock_(std::move(clock)) {}

Result<Credentials> CredentialCache::get() {
  std::lock_guard lock(mu_);
  SysTime now = clock_->system_now();
  if (current_ && (!current_->expires || *current_->expires - now > kRefreshAhead)) {
    return *current_;
  }
  Result<Credentials> fresh = find_credentials(sources_);
  if (!fresh) {
    if (current_ && current_->expires && *current_->expires > now) {
      return *current_;  // not expired yet: use them while the source is down
    }
    return fresh.error();
  }
  current_ = *fresh;
  return fresh;
}

void CredentialCache::invalidate() {
  std::lock_guard lock(mu_);
  current_.reset();
}

}  // namespace aec::aws
