// Text that comes from outside (a client, a command line, a store) as aec checks it and quotes
// it in messages. Internal to aec.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <aec/status.h>

namespace aec {

// Decodes the UTF-8 sequence at s[i]: its length (1-4), with its code point in `cp`; 0 when it is
// invalid (a stray or missing continuation byte, an overlong form, a surrogate, past U+10FFFF).
std::size_t decode_utf8(std::string_view s, std::size_t i, char32_t& cp);

// Ok when `text` is valid UTF-8 without control characters (U+0000-001F, U+007F-009F); else
// InvalidArgument "WHAT is not valid UTF-8 (at byte N)" or "WHAT contains control character
// U+XXXX at byte N", which never shows the text itself.
Status check_clean_text(std::string_view what, std::string_view text);

// `text` in single quotes as a message shows what a caller sent: control characters, the quote,
// the backslash and bytes that are not UTF-8 escaped ("\n", "\'", "\\", "\x7f", "\u0085"), so
// that the message stays one line of valid UTF-8 whatever the text holds.
std::string quote(std::string_view text);

// What an errno value means, as strerror() says it ("Connection refused"), for messages.
std::string errno_text(int err);

// The parts of `s` between the separators: "a,b" -> {"a", "b"}, "" -> {""}, "a," -> {"a", ""}.
// The views point into `s`.
std::vector<std::string_view> split(std::string_view s, char sep);

}  // namespace aec
