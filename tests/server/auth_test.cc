#include "server/auth.h"

#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "tests/support/temp_dir.h"

namespace aec::server {
namespace {

constexpr std::string_view kReaderToken = "reader-token-0123456789";
constexpr std::string_view kWriterToken = "writer-token-0123456789";
constexpr std::string_view kAdminToken = "admin-token-01234567890";
constexpr std::string_view kRootToken = "root+token/0123456789==";

// The hex SHA-256 of a token, as a token file may hold it.
std::string hex_hash(std::string_view token) {
  std::string out;
  for (std::uint8_t b : sha256(token)) {
    out += fmt::format("{:02x}", b);
  }
  return out;
}

std::string token_file_text() {
  return fmt::format(
      "# TOKEN NAME ROLE PREFIXES\n"
      "\n"
      "{} dash reader etl/,reports/\n"
      "  {}\tetl-bot   writer etl/  \n"
      "sha256:{} etl-admin admin etl/\n"
      "{} root admin *\n",
      kReaderToken, kWriterToken, hex_hash(kAdminToken), kRootToken);
}

Authorizer load() {
  auto a = Authorizer::from_text(token_file_text(), "tokens");
  if (!a) {
    ADD_FAILURE() << a.error().message();
    std::abort();
  }
  return std::move(*a);
}

Principal principal(const Authorizer& a, std::string_view token) {
  auto p = a.authenticate(fmt::format("Bearer {}", token));
  EXPECT_TRUE(p.has_value()) << p.error().message();
  return p.has_value() ? *p : Principal{};
}

TEST(AuthTest, AuthenticatesEachToken) {
  Authorizer a = load();
  EXPECT_EQ(a.token_count(), 4u);
  EXPECT_FALSE(a.is_anonymous());
  Principal reader = principal(a, kReaderToken);
  EXPECT_EQ(reader.name, "dash");
  EXPECT_EQ(reader.role, Role::Reader);
  EXPECT_EQ(reader.prefixes, (std::vector<std::string>{"etl/", "reports/"}));
  EXPECT_FALSE(reader.all_keys);
  EXPECT_EQ(principal(a, kWriterToken).name, "etl-bot");
  EXPECT_EQ(principal(a, kAdminToken).name, "etl-admin");  // given as sha256:HEX
  Principal root = principal(a, kRootToken);
  EXPECT_EQ(root.role, Role::Admin);
  EXPECT_TRUE(root.all_keys);
  // The scheme in any case, spaces around the token.
  EXPECT_EQ(a.authenticate(fmt::format("bEARER   {} ", kWriterToken))->name, "etl-bot");
}

TEST(AuthTest, RefusesMissingMalformedAndUnknownTokensWithoutEchoingThem) {
  Authorizer a = load();
  for (std::string header :
       {std::string(), std::string("   "), std::string("Bearer"), std::string("Bearer  "),
        fmt::format("Basic {}", kWriterToken), fmt::format("Bearer{}", kWriterToken),
        std::string("Bearer not-a-token-of-ours"), fmt::format("Bearer {}x", kWriterToken),
        fmt::format("Bearer {}", hex_hash(kAdminToken)),
        fmt::format("Bearer sha256:{}", hex_hash(kAdminToken))}) {
    auto p = a.authenticate(header);
    ASSERT_FALSE(p.has_value()) << header;
    EXPECT_EQ(p.error().code(), Code::PermissionDenied);
    EXPECT_EQ(p.error().message().find("token-"), std::string::npos) << p.error().message();
  }
  EXPECT_NE(a.authenticate("").error().message().find("Authorization: Bearer TOKEN"),
            std::string::npos);
}

TEST(AuthTest, RoleAccessPrefixTable) {
  Authorizer a = load();
  struct Row {
    std::string_view token;
    bool read, write, admin;  // within the token's prefixes
  };
  const Row rows[] = {{kReaderToken, true, false, false},
                      {kWriterToken, true, true, false},
                      {kAdminToken, true, true, true},
                      {kRootToken, true, true, true}};
  for (const Row& row : rows) {
    Principal p = principal(a, row.token);
    bool allowed[] = {row.read, row.write, row.admin};
    for (Access access : {Access::Read, Access::Write, Access::Admin}) {
      bool role_ok = allowed[static_cast<int>(access)];
      Status inside = Authorizer::authorize(p, access, "etl/daily");
      EXPECT_EQ(inside.is_ok(), role_ok) << p.name << " " << access_name(access);
      // A key outside the prefixes is refused whatever the role, except for "*" tokens.
      Status outside = Authorizer::authorize(p, access, "billing/monthly");
      EXPECT_EQ(outside.is_ok(), role_ok && p.all_keys) << p.name << " " << access_name(access);
      for (const Status& s : {inside, outside}) {
        if (!s.is_ok()) {
          EXPECT_EQ(s.code(), Code::PermissionDenied);
          EXPECT_NE(s.message().find(p.name), std::string::npos) << s.message();
        }
      }
    }
  }
}

TEST(AuthTest, MessagesSayWhatIsMissing) {
  Authorizer a = load();
  Principal reader = principal(a, kReaderToken);
  EXPECT_NE(Authorizer::authorize(reader, Access::Write, "etl/x").message().find("writer"),
            std::string::npos);
  Principal writer = principal(a, kWriterToken);
  std::string outside = Authorizer::authorize(writer, Access::Write, "ops/x").message();
  EXPECT_NE(outside.find("key 'ops/x'"), std::string::npos) << outside;
  EXPECT_NE(outside.find("(etl/)"), std::string::npos) << outside;
  // A prefix matches bytes: "etl/" covers "etl/x" but not "etl" or "etl-x".
  EXPECT_FALSE(Authorizer::authorize(writer, Access::Read, "etl").is_ok());
  EXPECT_FALSE(Authorizer::authorize(writer, Access::Read, "etl-x").is_ok());
  EXPECT_TRUE(Authorizer::authorize(writer, Access::Read, "etl/").is_ok());
}

// Fuzz bug "newline": the key or prefix a client sent was quoted as it was in a 403's message.
TEST(AuthTest, NewlineKeysAndPrefixesAreQuotedEscapedOnOneLine) {
  Authorizer a = load();
  Principal writer = principal(a, kWriterToken);
  std::string key = Authorizer::authorize(writer, Access::Write, "ops/\nx").message();
  EXPECT_EQ(key.find('\n'), std::string::npos) << key;
  EXPECT_NE(key.find("key 'ops/\\nx'"), std::string::npos) << key;
  std::string prefix = Authorizer::authorize_list(writer, "ops\r\n").message();
  EXPECT_EQ(prefix.find_first_of("\r\n"), std::string::npos) << prefix;
  EXPECT_NE(prefix.find("prefix 'ops\\r\\n'"), std::string::npos) << prefix;
}

TEST(AuthTest, ListsNeedAPrefixWithinTheToken) {
  Authorizer a = load();
  Principal reader = principal(a, kReaderToken);
  EXPECT_TRUE(Authorizer::authorize_list(reader, "etl/").is_ok());
  EXPECT_TRUE(Authorizer::authorize_list(reader, "reports/2026").is_ok());
  EXPECT_FALSE(Authorizer::authorize_list(reader, "etl").is_ok());  // would show "etlx/..."
  EXPECT_FALSE(Authorizer::authorize_list(reader, "ops/").is_ok());
  Status all = Authorizer::authorize_list(reader, "");
  EXPECT_EQ(all.code(), Code::PermissionDenied);
  EXPECT_NE(all.message().find("without a prefix"), std::string::npos);
  Principal root = principal(a, kRootToken);
  EXPECT_TRUE(Authorizer::authorize_list(root, "").is_ok());
  EXPECT_TRUE(Authorizer::authorize_list(root, "anything").is_ok());
  EXPECT_TRUE(Authorizer::covers(reader, "reports/x"));
  EXPECT_FALSE(Authorizer::covers(reader, "ops/x"));
}

TEST(AuthTest, GlobalCallsNeedAnAdminWithEveryKey) {
  Authorizer a = load();
  EXPECT_TRUE(Authorizer::authorize_global(principal(a, kRootToken), Access::Admin).is_ok());
  EXPECT_FALSE(Authorizer::authorize_global(principal(a, kAdminToken), Access::Admin).is_ok());
  EXPECT_FALSE(Authorizer::authorize_global(principal(a, kWriterToken), Access::Admin).is_ok());
}

TEST(AuthTest, AnonymousIsAnAdminOfEveryKey) {
  Authorizer a = Authorizer::anonymous();
  EXPECT_TRUE(a.is_anonymous());
  for (std::string_view header : {"", "Bearer whatever-it-may-be", "garbage"}) {
    auto p = a.authenticate(header);
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->name, "anonymous");
    EXPECT_EQ(p->role, Role::Admin);
    EXPECT_TRUE(Authorizer::authorize(*p, Access::Admin, "any/key").is_ok());
    EXPECT_TRUE(Authorizer::authorize_list(*p, "").is_ok());
    EXPECT_TRUE(Authorizer::authorize_global(*p, Access::Admin).is_ok());
  }
}

TEST(AuthTest, FileErrorsNameTheLineAndNeverTheToken) {
  constexpr std::string_view kSecret = "s3cret-value-0123456789";
  struct Case {
    std::string line;
    std::string expected;
  };
  for (const Case& k : std::vector<Case>{
           {fmt::format("{} bot writer", kSecret), "expected 4 fields"},
           {fmt::format("{} bot writer etl/ extra", kSecret), "expected 4 fields"},
           {fmt::format("{} bot owner etl/", kSecret), "unknown role 'owner'"},
           {fmt::format("{} bot writer etl/,", kSecret), "comma-separated"},
           {fmt::format("{} bot writer *,etl/", kSecret), "'*' alone"},
           {fmt::format("{} b\"ot writer etl/", kSecret), "bad name"},
           {"short bot writer etl/", "16 to 512 characters"},
           {"has\"quote-0123456789 bot writer etl/", "16 to 512 characters"},
           {"sha256:abc bot writer etl/", "64 hex digits"},
           {fmt::format("sha256:{}x bot writer etl/", hex_hash("a").substr(1)), "64 hex digits"},
       }) {
    auto a = Authorizer::from_text("# header\n" + k.line + "\n", "/etc/aec/tokens");
    ASSERT_FALSE(a.has_value()) << k.line;
    EXPECT_EQ(a.error().code(), Code::InvalidArgument);
    const std::string& m = a.error().message();
    EXPECT_EQ(m.rfind("/etc/aec/tokens:2: ", 0), 0u) << m;
    EXPECT_NE(m.find(k.expected), std::string::npos) << m;
    EXPECT_EQ(m.find(kSecret), std::string::npos) << m;
  }
}

TEST(AuthTest, RefusesDuplicateTokensAndEmptyFiles) {
  std::string text = fmt::format("{0} a reader *\n{1} b reader *\nsha256:{2} c reader *\n",
                                 kReaderToken, kWriterToken, hex_hash(kReaderToken));
  auto dup = Authorizer::from_text(text, "t");
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().message(), "t:3: the same token as line 1");
  auto empty = Authorizer::from_text("# nothing yet\n\n", "t");
  ASSERT_FALSE(empty.has_value());
  EXPECT_NE(empty.error().message().find("no tokens"), std::string::npos);
}

TEST(AuthTest, FromFileWarnsWhenOthersMayReadSecrets) {
  testing::TempDir dir;
  std::string path = dir.file("tokens");
  std::ofstream(path) << token_file_text();
  ::chmod(path.c_str(), 0600);
  auto a = Authorizer::from_file(path);
  ASSERT_TRUE(a.has_value()) << a.error().message();
  EXPECT_TRUE(a->warnings().empty());
  ::chmod(path.c_str(), 0640);
  a = Authorizer::from_file(path);
  ASSERT_TRUE(a.has_value());
  ASSERT_EQ(a->warnings().size(), 1u);
  EXPECT_NE(a->warnings()[0].find("chmod 600"), std::string::npos);
  EXPECT_NE(a->warnings()[0].find("0640"), std::string::npos);
  // Only hashes: nothing secret to protect.
  std::ofstream(path) << fmt::format("sha256:{} ops admin *\n", hex_hash(kAdminToken));
  a = Authorizer::from_file(path);
  ASSERT_TRUE(a.has_value());
  EXPECT_TRUE(a->warnings().empty());
  EXPECT_EQ(principal(*a, kAdminToken).name, "ops");
}

TEST(AuthTest, FromFileReportsAnUnreadableFile) {
  auto a = Authorizer::from_file("/nonexistent/tokens");
  ASSERT_FALSE(a.has_value());
  EXPECT_EQ(a.error().code(), Code::InvalidArgument);
  EXPECT_NE(a.error().message().find("/nonexistent/tokens"), std::string::npos);
}

TEST(AuthTest, Sha256MatchesAKnownVector) {
  EXPECT_EQ(hex_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace aec::server
