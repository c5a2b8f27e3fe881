// Checking and quoting outside text (core/text.h).
#include "core/text.h"

#include <cerrno>
#include <string>

#include <gtest/gtest.h>

namespace aec {
namespace {

// Fuzz bug "newline": what quote() gives is one line of valid UTF-8 whatever it quotes.
TEST(TextTest, NewlineQuoteEscapesControlCharactersQuotesAndInvalidUtf8) {
  EXPECT_EQ(quote("etl/daily"), "'etl/daily'");
  EXPECT_EQ(quote(""), "''");
  EXPECT_EQ(quote("a\nb\r\tc"), "'a\\nb\\r\\tc'");
  EXPECT_EQ(quote("it's a \\"), "'it\\'s a \\\\'");
  EXPECT_EQ(quote(std::string("\0\x1f\x7f", 3)), "'\\x00\\x1f\\x7f'");
  EXPECT_EQ(quote("\xc2\x85"), "'\\u0085'");              // NEL, a C1 control
  EXPECT_EQ(quote("\xff\xc3"), "'\\xff\\xc3'");           // not UTF-8, and cut short
  EXPECT_EQ(quote("\xed\xa0\x80"), "'\\xed\\xa0\\x80'");  // a surrogate
  EXPECT_EQ(quote("ü€😀"), "'ü€😀'");
  for (int c = 0; c < 256; ++c) {
    std::string q = quote(std::string(1, static_cast<char>(c)) + "x");
    EXPECT_EQ(q.find_first_of("\r\n"), std::string::npos) << c;
    EXPECT_TRUE(check_clean_text("q", q).is_ok()) << c << ": " << q;
  }
}

TEST(TextTest, CheckCleanTextNamesWhatAndWhere) {
  EXPECT_TRUE(check_clean_text("id", "run-1 ü").is_ok());
  EXPECT_EQ(check_clean_text("id", "a\xff").message(), "id is not valid UTF-8 (at byte 1)");
  EXPECT_EQ(check_clean_text("id", "ab\n").message(),
            "id contains control character U+000A at byte 2");
}

TEST(TextTest, ErrnoTextSaysWhatTheErrorMeans) {
  EXPECT_EQ(errno_text(ECONNREFUSED), "Connection refused");
  EXPECT_EQ(errno_text(ENOENT), "No such file or directory");
}

}  // namespace
}  // namespace aec
