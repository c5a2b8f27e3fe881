#include <string>
#include <utility>

#include <fmt/format.h>

#include <aec/key.h>

namespace aec {
namespace {

// Decodes one UTF-8 sequence at s[i]; returns its length and sets `cp`, or 0 when invalid
// (overlong forms, surrogates and values past U+10FFFF are invalid).
std::size_t decode_utf8(std::string_view s, std::size_t i, char32_t& cp) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char b0 = byte(i);
  std::size_t len = b0 < 0x80           ? 1
                    : (b0 >> 5) == 0x6  ? 2
                    : (b0 >> 4) == 0xE  ? 3
                    : (b0 >> 3) == 0x1E ? 4
                                        : 0;
  if (len == 0 || i + len > s.size()) {
    return 0;
  }
  cp = len == 1 ? b0 : len == 2 ? (b0 & 0x1F) : len == 3 ? (b0 & 0x0F) : (b0 & 0x07);
  for (std::size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) {
      return 0;
    }
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  static constexpr char32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  return len;
}

}  // namespace

Status validate_key(std::string_view key) {
  if (key.empty()) {
    return invalid_argument("key is empty: give a name such as TEAM/JOB");
  }
  if (key.size() > kMaxKeyBytes) {
    return invalid_argument(
        fmt::format("key is {} bytes long; the limit is {} bytes", key.size(), kMaxKeyBytes));
  }
  for (std::size_t i = 0; i < key.size();) {
    char32_t cp = 0;
    std::size_t len = decode_utf8(key, i, cp);
    if (len == 0) {
      return invalid_argument(fmt::format("key is not valid UTF-8 (at byte {})", i));
    }
    if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
      return invalid_argument(
          fmt::format("key contains control character U+{:04X} at byte {}", uint32_t(cp), i));
    }
    i += len;
  }
  return Status::ok();
}

Result<std::string> team_job_key(std::string_view team, std::string_view job) {
  std::pair<const char*, std::string_view> parts[] = {{"team", team}, {"job", job}};
  for (auto [what, part] : parts) {
    if (part.empty()) {
      return invalid_argument(fmt::format("the {} name is empty", what));
    }
  }
  std::string key = fmt::format("{}/{}", team, job);
  // Checked before '/' so that a name with a control character is never echoed.
  if (Status s = validate_key(key); !s.is_ok()) {
    return s;
  }
  for (auto [what, part] : parts) {
    if (part.find('/') != std::string_view::npos) {
      return invalid_argument(fmt::format("the {} name '{}' contains '/'", what, part));
    }
  }
  return key;
}

}  // namespace aec
