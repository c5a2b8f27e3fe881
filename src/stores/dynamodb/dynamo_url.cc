#include "stores/dynamodb/dynamo_url.h"

#include <algorithm>

#include <fmt/format.h>

#include "api/wire.h"
#include "core/text.h"

namespace aec::aws {
namespace {

constexpr std::string_view kForm =
    "dynamodb://TABLE[?region=eu-west-1&endpoint=http://127.0.0.1:8000&create=true]";

Status bad(std::string_view url, std::string_view what) {
  return invalid_argument(fmt::format("store URL {}: {}; write {}", quote(url), what, kForm));
}

// DynamoDB's rule for table names: 3 to 255 of a-z, A-Z, 0-9, '_', '-' and '.'.
bool valid_table(std::string_view name) {
  if (name.size() < 3 || name.size() > 255) {
    return false;
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) {
      return false;
    }
  }
  return true;
}

// http(s)://HOST[:PORT] with nothing after it but an optional '/'.
bool valid_endpoint(std::string_view e) {
  std::string_view rest;
  if (e.starts_with("http://")) {
    rest = e.substr(7);
  } else if (e.starts_with("https://")) {
    rest = e.substr(8);
  } else {
    return false;
  }
  if (rest.ends_with('/')) {
    rest.remove_suffix(1);
  }
  return !rest.empty() && rest.find_first_of("/?#@") == std::string_view::npos &&
         std::all_of(rest.begin(), rest.end(), [](char ch) { return ch > ' ' && ch < 0x7f; });
}

// An attribute name aec can put in an expression through a placeholder: 1 to 255 bytes, no
// control characters.
bool valid_attribute(std::string_view name) {
  if (name.empty() || name.size() > 255) {
    return false;
  }
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) {
      return false;
    }
  }
  return true;
}

Status set_param(DynamoUrl& out, std::string_view url, std::string_view param) {
  std::size_t eq = param.find('=');
  if (eq == std::string_view::npos) {
    return bad(url, fmt::format("parameter {} has no value", quote(param)));
  }
  std::string_view name = param.substr(0, eq);
  Result<std::string> value = wire::decode_path_segment(param.substr(eq + 1));
  if (!value) {
    return bad(url, fmt::format("the value of {} is not percent-encoded correctly", quote(name)));
  }
  const std::string& v = *value;
  if (name == "region") {
    if (v.empty() ||
        v.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos) {
      return bad(url, fmt::format("region {} is not a region name such as eu-west-1", quote(v)));
    }
    out.region = v;
  } else if (name == "endpoint") {
    if (!valid_endpoint(v)) {
      return bad(url, fmt::format("endpoint {} is not http(s)://HOST[:PORT]", quote(v)));
    }
    out.endpoint = v.ends_with('/') ? v.substr(0, v.size() - 1) : v;
  } else if (name == "profile") {
    if (v.empty()) {
      return bad(url, "the profile is empty");
    }
    if (!valid_attribute(v)) {
      return bad(url, fmt::format("profile {} holds a control character", quote(v)));
    }
    out.profile = v;
  } else if (name == "key") {
    if (!valid_attribute(v)) {
      return bad(url, fmt::format("key {} is not an attribute name (1 to 255 bytes)", quote(v)));
    }
    out.key = v;
  } else if (name == "create") {
    if (v != "true" && v != "false") {
      return bad(url, fmt::format("create={}: write create=true or create=false", quote(v)));
    }
    out.create = v == "true";
  } else if (name == "layout") {
    if (v != "native" && v != "aec-python") {
      return bad(url, fmt::format("layout {} is not known (known: native, aec-python)", quote(v)));
    }
    out.python = v == "aec-python";
  } else {
    return bad(url, fmt::format("unknown parameter {} (known: region, endpoint, profile, key, "
                                "create, layout)",
                                quote(name)));
  }
  return Status::ok();
}

}  // namespace

Result<DynamoUrl> parse_dynamo_url(std::string_view url) {
  constexpr std::string_view kScheme = "dynamodb://";
  if (!url.starts_with(kScheme)) {
    return bad(url, "not a dynamodb URL");
  }
  DynamoUrl out{.display = std::string(url)};
  std::string_view rest = url.substr(kScheme.size());
  std::string_view table = rest.substr(0, rest.find('?'));
  if (table.empty()) {
    return bad(url, "no table");
  }
  if (!valid_table(table)) {
    return bad(url, fmt::format("table {} is not a DynamoDB table name (3 to 255 of a-z, A-Z, "
                                "0-9, _ - .)",
                                quote(table)));
  }
  out.table = std::string(table);
  if (table.size() < rest.size()) {
    for (std::string_view param : split(rest.substr(table.size() + 1), '&')) {
      if (Status s = set_param(out, url, param); !s.is_ok()) {
        return s;
      }
    }
  }
  return out;
}

std::string endpoint_for(const DynamoUrl& url, std::string_view region) {
  if (!url.endpoint.empty()) {
    return url.endpoint;
  }
  return fmt::format("https://dynamodb.{}.amazonaws.com", region);
}

}  // namespace aec::aws
