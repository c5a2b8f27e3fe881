// The postgres store's URL: aec's parameters are taken out, libpq's are left, and every mistake
// is one line naming the URL (without its password) and what to write instead.
#include <gtest/gtest.h>

#include "stores/postgres/pg_url.h"

namespace aec::pg {
namespace {

TEST(PgUrl, DefaultsAndLibpqParametersPassThrough) {
  auto u = parse_pg_url("postgres://aec@db.example:5433/jobs?sslmode=require&connect_timeout=3");
  ASSERT_TRUE(u.has_value()) << u.error().to_string();
  EXPECT_EQ(u->schema, "aec");
  EXPECT_EQ(u->pool, 8);
  EXPECT_FALSE(u->pooled);
  EXPECT_EQ(u->conninfo, "postgres://aec@db.example:5433/jobs?sslmode=require&connect_timeout=3");
  EXPECT_EQ(u->listen, u->conninfo);  // LISTEN on a connection like the others
}

TEST(PgUrl, AecParametersAreTakenOut) {
  auto u = parse_pg_url(
      "postgresql://aec@h/db?schema=locks_1&pool=3&application_name=x&pooler=transaction&"
      "listen=postgres%3A%2F%2Faec%40h%3A5432%2Fdb");
  ASSERT_TRUE(u.has_value()) << u.error().to_string();
  EXPECT_EQ(u->schema, "locks_1");
  EXPECT_EQ(u->pool, 3);
  EXPECT_TRUE(u->pooled);
  EXPECT_EQ(u->conninfo, "postgresql://aec@h/db?application_name=x");
  EXPECT_EQ(u->listen, "postgres://aec@h:5432/db");
}

TEST(PgUrl, ATransactionPoolerWithoutListenPolls) {
  auto u = parse_pg_url("postgres://aec@h/db?pooler=transaction");
  ASSERT_TRUE(u.has_value());
  EXPECT_TRUE(u->listen.empty());
}

TEST(PgUrl, ThePasswordIsNeverShown) {
  auto u = parse_pg_url("postgres://aec:s3cret@h/db");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->display, "postgres://aec:***@h/db");
  EXPECT_EQ(u->conninfo, "postgres://aec:s3cret@h/db");
  auto bad = parse_pg_url("postgres://aec:s3cret@h/db?pool=0");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().message().find("s3cret"), std::string::npos) << bad.error().message();
}

// Fuzz bug "pg-password-echo": libpq's message about a malformed %-escape quoted the password.
TEST(PgUrl, PgPasswordEchoIsRedactedFromLibpqsMessage) {
  for (const char* url :
       {"postgres://aec:s3cret-pass%zz@db:5432/aec",
        "postgres://h/db?listen=postgres%3A%2F%2Faec%3As3cret-pass%25zz%40h%2Fdb"}) {
    SCOPED_TRACE(url);
    auto bad = parse_pg_url(url);
    ASSERT_FALSE(bad.has_value());
    EXPECT_EQ(bad.error().code(), Code::InvalidArgument);
    EXPECT_NE(bad.error().message().find("percent-encoded"), std::string::npos)
        << bad.error().message();
    EXPECT_EQ(bad.error().message().find("s3cret-pass%zz"), std::string::npos)
        << bad.error().message();
    EXPECT_NE(bad.error().message().find("***"), std::string::npos) << bad.error().message();
  }
}

TEST(PgUrl, MistakesAreOneLineNamingTheFix) {
  struct Case {
    const char* url;
    const char* says;
  };
  for (const Case& c : {
           Case{"mysql://h/db", "postgres://USER@HOST:PORT/DATABASE"},
           Case{"postgres://h/db?schema=Bad-Name", "schema 'Bad-Name'"},
           Case{"postgres://h/db?schema=", "schema ''"},
           Case{"postgres://h/db?pool=many", "pool 'many'"},
           Case{"postgres://h/db?pool=0", "from 1 to 1000"},
           Case{"postgres://h/db?pooler=statement", "pooler=transaction"},
           Case{"postgres://h/db?listen=h2", "postgres:// URL"},
           Case{"postgres://h/db?nosuch=1", "aec's own parameters"},
           Case{"postgres://h/db?schema=%zz", "%-escape"},
           Case{"postgres://h/db#frag", "fragment"},
       }) {
    auto u = parse_pg_url(c.url);
    ASSERT_FALSE(u.has_value()) << c.url;
    EXPECT_EQ(u.error().code(), Code::InvalidArgument) << c.url;
    EXPECT_NE(u.error().message().find(c.says), std::string::npos) << u.error().message();
    EXPECT_EQ(u.error().message().find('\n'), std::string::npos) << u.error().message();
  }
}

}  // namespace
}  // namespace aec::pg
