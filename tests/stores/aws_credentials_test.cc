// The AWS credential chain of the dynamodb:// store: the environment, the shared files'
// profiles, the container endpoint and IMDSv2 (both served on loopback by CannedHttp), the order
// between them, the region, and refreshing temporary credentials before they expire.
#include "stores/dynamodb/aws_credentials.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>

#include <gtest/gtest.h>

#include "core/duration.h"
#include "tests/stores/aws_test_env.h"
#include "tests/support/canned_http.h"
#include "tests/support/manual_clock.h"
#include "tests/support/temp_dir.h"

namespace aec::aws {
namespace {

using namespace std::chrono_literals;
using testing::CannedHttp;
using testing::CannedRequest;
using testing::CannedResponse;

constexpr const char* kSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

// A fake process: its environment and a home directory of its own, and no instance metadata
// service (a closed port) unless a test gives it one.
class Chain : public ::testing::Test {
 protected:
  Chain() { env_["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = "http://127.0.0.1:1"; }

  CredentialSources sources(std::string profile = "") {
    return {.getenv = env_of(env_), .home = home_.path().string(), .profile = std::move(profile)};
  }

  void write(const std::string& relative, const std::string& text) {
    std::filesystem::path p = home_.path() / relative;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }

  std::map<std::string, std::string> env_;
  testing::TempDir home_;
};

TEST_F(Chain, TheEnvironmentComesFirst) {
  env_["AWS_ACCESS_KEY_ID"] = "AKIDENV";
  env_["AWS_SECRET_ACCESS_KEY"] = kSecret;
  env_["AWS_SESSION_TOKEN"] = "session";
  write(".aws/credentials", "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = x\n");
  Result<Credentials> c = find_credentials(sources());
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->access_key_id, "AKIDENV");
  EXPECT_EQ(c->secret_access_key, kSecret);
  EXPECT_EQ(c->session_token, "session");
  EXPECT_FALSE(c->expires);
}

TEST_F(Chain, HalfAKeyPairInTheEnvironmentIsAnError) {
  env_["AWS_ACCESS_KEY_ID"] = "AKIDENV";
  Result<Credentials> c = find_credentials(sources());
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), Code::InvalidArgument);
  EXPECT_EQ(c.error().message(),
            "$AWS_ACCESS_KEY_ID is set but $AWS_SECRET_ACCESS_KEY is not: set both, or neither");
}

TEST_F(Chain, ProfilesComeFromTheCredentialsFileThenTheConfigFile) {
  write(".aws/credentials",
        "# keys\n[default]\naws_access_key_id=AKIDDEFAULT\naws_secret_access_key=s1\n\n"
        "[dev]\naws_access_key_id = AKIDDEV\n; a comment\naws_secret_access_key = s2\n");
  write(".aws/config",
        "[default]\nregion = us-east-1\n[profile dev]\nregion=eu-central-1\n"
        "s3 =\n  max_concurrent_requests = 4\n[profile ops]\naws_access_key_id = AKIDOPS\n"
        "aws_secret_access_key = s3\naws_session_token = t3\n");
  Result<Credentials> d = find_credentials(sources());
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_EQ(d->access_key_id, "AKIDDEFAULT");
  EXPECT_EQ(d->source, "profile 'default'");

  env_["AWS_PROFILE"] = "dev";
  Result<Credentials> dev = find_credentials(sources());
  ASSERT_TRUE(dev) << dev.error().to_string();
  EXPECT_EQ(dev->access_key_id, "AKIDDEV");
  EXPECT_EQ(*find_region("", sources()), "eu-central-1");

  Result<Credentials> ops = find_credentials(sources("ops"));  // the URL's profile= wins
  ASSERT_TRUE(ops) << ops.error().to_string();
  EXPECT_EQ(ops->access_key_id, "AKIDOPS");
  EXPECT_EQ(ops->session_token, "t3");
}

TEST_F(Chain, TheUrlsProfileIsUsedEvenWhenTheEnvironmentHasKeys) {
  env_["AWS_ACCESS_KEY_ID"] = "AKIDENV";
  env_["AWS_SECRET_ACCESS_KEY"] = kSecret;
  write(".aws/credentials", "[ci]\naws_access_key_id = AKIDCI\naws_secret_access_key = s\n");
  Result<Credentials> c = find_credentials(sources("ci"));
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->access_key_id, "AKIDCI");
}

TEST_F(Chain, ANamedProfileThatIsMissingOrCannotWorkIsAnError) {
  write(".aws/config",
        "[profile role]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = a\n"
        "[profile half]\naws_access_key_id = AKIDHALF\n");
  Result<Credentials> missing = find_credentials(sources("nope"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Code::InvalidArgument);
  EXPECT_NE(missing.error().message().find("AWS profile 'nope' is in neither"), std::string::npos)
      << missing.error().message();

  Result<Credentials> role = find_credentials(sources("role"));
  ASSERT_FALSE(role);
  EXPECT_NE(role.error().message().find("through role_arn, which aec does not do"),
            std::string::npos)
      << role.error().message();

  env_["AWS_PROFILE"] = "half";
  Result<Credentials> half = find_credentials(sources());
  ASSERT_FALSE(half);
  EXPECT_NE(half.error().message().find("needs both aws_access_key_id and aws_secret_access_key"),
            std::string::npos)
      << half.error().message();
}

TEST_F(Chain, TheRegionComesFromTheUrlTheEnvironmentTheProfileOrTheDefault) {
  EXPECT_EQ(*find_region("", sources()), "eu-west-1");
  write(".aws/config", "[default]\nregion = ap-south-1\n");
  EXPECT_EQ(*find_region("", sources()), "ap-south-1");
  env_["AWS_DEFAULT_REGION"] = "us-west-2";
  EXPECT_EQ(*find_region("", sources()), "us-west-2");
  env_["AWS_REGION"] = "sa-east-1";
  EXPECT_EQ(*find_region("", sources()), "sa-east-1");
  EXPECT_EQ(*find_region("eu-north-1", sources()), "eu-north-1");
}

TEST_F(Chain, TheContainerEndpointGivesTemporaryCredentialsWithItsToken) {
  CannedHttp endpoint([](const CannedRequest& r) {
    if (r.target != "/v2/credentials/abc" || r.header("authorization") != "token-123") {
      return CannedResponse{.status = 403, .body = "{}"};
    }
    return CannedResponse{.body = R"({"AccessKeyId": "ASIACONTAINER", "SecretAccessKey": "s",
        "Token": "t", "Expiration": "2030-01-02T03:04:05Z", "RoleArn": "arn:x"})"};
  });
  env_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = endpoint.url() + "/v2/credentials/abc";
  write("token", "token-123\n");
  env_["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = (home_.path() / "token").string();
  Result<Credentials> c = find_credentials(sources());
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->access_key_id, "ASIACONTAINER");
  EXPECT_EQ(c->session_token, "t");
  ASSERT_TRUE(c->expires);
  EXPECT_EQ(*c->expires, std::chrono::sys_days(std::chrono::year(2030) / 1 / 2) + 3h + 4min + 5s);

  // Fargate's form: a path on the endpoint's fixed address (moved to loopback here).
  env_.erase("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  env_["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = "/v2/credentials/abc";
  CredentialSources s = sources();
  s.container_host = endpoint.url();
  Result<Credentials> relative = find_credentials(s);
  ASSERT_TRUE(relative) << relative.error().to_string();
  EXPECT_EQ(relative->access_key_id, "ASIACONTAINER");
}

TEST_F(Chain, AContainerEndpointThatFailsIsAnErrorNotASkip) {
  CannedHttp endpoint([](const CannedRequest&) { return CannedResponse{.status = 500}; });
  env_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = endpoint.url() + "/creds";
  Result<Credentials> c = find_credentials(sources());
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), Code::Unavailable);
  EXPECT_NE(c.error().message().find("answered HTTP 500"), std::string::npos)
      << c.error().message();

  env_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = "http://credentials.example.com/creds";
  Result<Credentials> remote = find_credentials(sources());
  ASSERT_FALSE(remote);
  EXPECT_EQ(remote.error().code(), Code::InvalidArgument);
  EXPECT_NE(remote.error().message().find("plain http only to loopback"), std::string::npos)
      << remote.error().message();
}

// IMDSv2: a session token by PUT, then the role's name, then its credentials, each GET carrying
// the token.
CannedResponse imds(const CannedRequest& r) {
  if (r.method == "PUT" && r.target == "/latest/api/token" &&
      r.header("x-aws-ec2-metadata-token-ttl-seconds") == "21600") {
    return {.body = "imds-token", .content_type = "text/plain"};
  }
  if (r.method != "GET" || r.header("x-aws-ec2-metadata-token") != "imds-token") {
    return {.status = 401};
  }
  if (r.target == "/latest/meta-data/iam/security-credentials/") {
    return {.body = "worker-role\n", .content_type = "text/plain"};
  }
  if (r.target == "/latest/meta-data/iam/security-credentials/worker-role") {
    return {.body = R"({"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": "ASIAINSTANCE",
        "SecretAccessKey": "s", "Token": "t", "Expiration": "2030-01-01T00:00:00Z"})"};
  }
  return {.status = 404};
}

TEST_F(Chain, TheInstanceMetadataServiceComesLast) {
  CannedHttp service(imds);
  env_["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = service.url() + "/";
  Result<Credentials> c = find_credentials(sources());
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->access_key_id, "ASIAINSTANCE");
  EXPECT_NE(c->source.find("role worker-role"), std::string::npos) << c->source;
  EXPECT_EQ(service.requests().size(), 3U);

  env_["AWS_EC2_METADATA_DISABLED"] = "true";
  Result<Credentials> disabled = find_credentials(sources());
  ASSERT_FALSE(disabled);
  EXPECT_NE(disabled.error().message().find("instance metadata disabled"), std::string::npos)
      << disabled.error().message();
}

TEST_F(Chain, NoCredentialsAnywhereSaysWhereItLooked) {
  Result<Credentials> c = find_credentials(sources());
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), Code::PermissionDenied);
  const std::string& m = c.error().message();
  for (const char* part : {"no $AWS_ACCESS_KEY_ID", "no profile 'default'", "no container endpoint",
                           "no instance metadata service at http://127.0.0.1:1"}) {
    EXPECT_NE(m.find(part), std::string::npos) << part << " in: " << m;
  }
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
}

TEST_F(Chain, TemporaryCredentialsAreFetchedAgainBeforeTheyExpire) {
  auto clock = std::make_shared<testing::ManualClock>();
  SysTime expiry = std::chrono::floor<std::chrono::seconds>(clock->system_now()) + 10min;
  std::string expiration = format_time(expiry);
  std::atomic<int> served{0};
  CannedHttp endpoint([&](const CannedRequest&) {
    ++served;
    return CannedResponse{.body = R"({"AccessKeyId": "ASIA)" + std::to_string(served.load()) +
                                  R"(", "SecretAccessKey": "s", "Token": "t", "Expiration": ")" +
                                  expiration + R"("})"};
  });
  env_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = endpoint.url() + "/creds";
  CredentialCache cache(sources(), clock);
  EXPECT_EQ(cache.get()->access_key_id, "ASIA1");
  EXPECT_EQ(cache.get()->access_key_id, "ASIA1");
  EXPECT_EQ(served.load(), 1);
  clock->advance(6min);  // within 5 min of the expiry
  EXPECT_EQ(cache.get()->access_key_id, "ASIA2");
  cache.invalidate();  // the service refused them
  EXPECT_EQ(cache.get()->access_key_id, "ASIA3");
}

TEST_F(Chain, SecretsAreInNoMessage) {
  write(".aws/credentials", std::string("[p]\naws_secret_access_key = ") + kSecret + "\n");
  Result<Credentials> c = find_credentials(sources("p"));
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().message().find(kSecret), std::string::npos) << c.error().message();
}

TEST(Ini, SectionsSettingsAndComments) {
  std::string text =
      "[default]\nregion = eu-west-1\n\n[profile  x]\n# c\nA_Key = v = w\nnested =\n"
      "  inner = 1\n[other]\nregion=us\n";
  auto x = ini_section(text, "profile x");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->at("a_key"), "v = w");
  EXPECT_EQ(x->at("nested"), "");
  EXPECT_EQ(x->count("inner"), 0U);
  EXPECT_EQ(ini_section(text, "other")->at("region"), "us");
  EXPECT_FALSE(ini_section(text, "missing"));
}

}  // namespace
}  // namespace aec::aws
