// The body, error and path forms of the /v1 API. Records are in wire_records.cc, leases in
// wire_leases.cc.
#include "api/wire.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/text.h"

namespace aec::wire {
namespace {

using nlohmann::json;

bool is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

// nlohmann's message without its "[json.exception.parse_error.101] parse error at line 1,
// column 5: " prefix, which repeats what we say with the byte offset.
std::string parse_detail(const char* what) {
  std::string_view text = what;
  if (std::size_t colon = text.find(": "); colon != std::string_view::npos) {
    text.remove_prefix(colon + 2);
  }
  return std::string(text);
}

// The codes of docs/api.md that exist only at the HTTP layer, mapped to the nearest Code.
std::optional<Code> http_layer_code(std::string_view word) {
  if (word == "unauthenticated") {
    return Code::PermissionDenied;
  }
  if (word == "method_not_allowed" || word == "payload_too_large" || word == "headers_too_large") {
    return Code::InvalidArgument;
  }
  return std::nullopt;
}

Code code_for_word(std::string_view word) {
  for (Code c : {Code::InvalidArgument, Code::NotFound, Code::FailedPrecondition, Code::Unavailable,
                 Code::DeadlineExceeded, Code::Cancelled, Code::PermissionDenied, Code::DataLoss,
                 Code::Internal}) {
    if (code_name(c) == word) {
      return c;
    }
  }
  return http_layer_code(word).value_or(Code::Internal);
}

}  // namespace

Result<json> parse_object(std::string_view body) {
  json j;
  try {
    j = json::parse(body.begin(), body.end());
  } catch (const json::parse_error& e) {
    return invalid_argument(
        fmt::format("body is not valid JSON at byte {}: {}", e.byte, parse_detail(e.what())));
  } catch (const json::exception& e) {
    return invalid_argument(fmt::format("body is not valid JSON: {}", parse_detail(e.what())));
  }
  if (!j.is_object()) {
    return invalid_argument("body must be a JSON object");
  }
  return j;
}

std::string to_text(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

json encode_error(const Status& status) {
  return encode_error(code_name(status.code()), status.message());
}

json encode_error(std::string_view code_word, std::string_view message) {
  return {{"error", {{"code", code_word}, {"message", message}}}};
}

std::optional<Status> decode_error(const json& j) {
  if (!j.is_object() || j.size() != 1 || !j.contains("error")) {
    return std::nullopt;
  }
  const json& e = j["error"];
  if (!e.is_object() || !e.contains("code") || !e["code"].is_string()) {
    return std::nullopt;
  }
  std::string message;
  if (auto it = e.find("message"); it != e.end() && it->is_string()) {
    message = it->get<std::string>();
    // A Status is one line, whatever a server sends.
    std::replace_if(
        message.begin(), message.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
  }
  const auto& word = e["code"].get_ref<const std::string&>();
  Code code = code_for_word(word);
  if (code == Code::Internal && word != code_name(Code::Internal)) {
    // A code this client does not know.
    message = fmt::format("{} (code {})", message, quote(word));
  }
  return Status(code, std::move(message));
}

int http_status(Code code) {
  switch (code) {
    case Code::Ok:
      return 200;
    case Code::InvalidArgument:
      return 400;
    case Code::PermissionDenied:
      return 403;
    case Code::NotFound:
      return 404;
    case Code::FailedPrecondition:
      return 409;
    case Code::Cancelled:
      return 499;
    case Code::DataLoss:
    case Code::Internal:
      return 500;
    case Code::Unavailable:
      return 503;
    case Code::DeadlineExceeded:
      return 504;
  }
  return 500;
}

Code code_for_http_status(int status) {
  if (status >= 200 && status < 300) {
    return Code::Ok;
  }
  switch (status) {
    case 401:
    case 403:
      return Code::PermissionDenied;
    case 404:
      return Code::NotFound;
    case 409:
      return Code::FailedPrecondition;
    case 408:
    case 504:
      return Code::DeadlineExceeded;
    case 429:
    case 502:
    case 503:
      return Code::Unavailable;
    case 499:
      return Code::Cancelled;
    default:
      break;
  }
  return status >= 400 && status < 500 ? Code::InvalidArgument : Code::Internal;
}

std::string encode_path_segment(std::string_view raw) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(raw.size());
  for (char ch : raw) {
    auto c = static_cast<unsigned char>(ch);
    if (is_unreserved(c)) {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

Result<std::string> decode_path_segment(std::string_view segment) {
  std::string out;
  out.reserve(segment.size());
  for (std::size_t i = 0; i < segment.size(); ++i) {
    if (segment[i] != '%') {
      out += segment[i];
      continue;
    }
    int hi = i + 2 < segment.size() ? hex_value(segment[i + 1]) : -1;
    int lo = i + 2 < segment.size() ? hex_value(segment[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      return invalid_argument(fmt::format(
          "path segment {}: '%' at byte {} is not followed by two hex digits", quote(segment), i));
    }
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

}  // namespace aec::wire
