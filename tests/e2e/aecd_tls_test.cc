// The real aecd (`aec serve`) serving HTTPS, and real `aec run --store https://…?cacert=…`
// processes using it (docs/aecd.md, TLS).
#include <chrono>
#include <regex>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <signal.h>

#include "tests/e2e/e2e_support.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_cert.h"

namespace aec::e2e {
namespace {

using namespace std::chrono_literals;
using testing::TempDir;
using testing::TestCertFiles;
using testing::write_test_cert;

// `aec serve` over HTTPS on 127.0.0.1:0, stopped (SIGTERM) when the test ends.
class TlsAecd {
 public:
  TlsAecd(const TempDir& dir, const TestCertFiles& cert) : log_(dir.file("aecd.log")) {
    pid_ = spawn_aec({"serve", "--listen", "127.0.0.1:0", "--store", "memory:", "--tls-cert",
                      cert.cert, "--tls-key", cert.key, "--quiet"},
                     {}, log_);
    // aecd says where it serves once it listens: "aec: serving memory: at https://HOST:PORT".
    static const std::regex serving("serving memory: at (https://127\\.0\\.0\\.1:[0-9]+)");
    auto deadline = std::chrono::steady_clock::now() + 10s;
    std::smatch m;
    std::string text;
    while (!std::regex_search(text = read_file(log_), m, serving) &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);  // polling a condition: the line in the log
    }
    url_ = m.empty() ? "" : m[1].str();
  }
  ~TlsAecd() {
    if (pid_ > 0) {
      stop();
    }
  }
  int stop() {
    kill(pid_, SIGTERM);
    int code = wait_exit(pid_);
    pid_ = -1;
    return code;
  }
  const std::string& url() const { return url_; }  // "" when it did not start
  std::string log() const { return read_file(log_); }

 private:
  std::string log_;
  std::string url_;
  pid_t pid_ = -1;
};

TEST(AecdTls, RunnersUseTheHttpsStoreWithCacert) {
  TempDir dir;
  TestCertFiles cert = write_test_cert(dir.path());
  TlsAecd aecd(dir, cert);
  ASSERT_FALSE(aecd.url().empty()) << aecd.log();

  Output ran = run_aec({"run", "--store", aecd.url() + "?cacert=" + cert.cert, "--key", "etl/daily",
                        "--", "sh", "-c", "echo ran with $AEC_FENCING_TOKEN"});
  EXPECT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out, "ran with 1\n") << ran.err;

  TestCertFiles other = write_test_cert(dir.path(), "other");
  Output untrusted = run_aec({"run", "--store", aecd.url() + "?cacert=" + other.cert, "--key",
                              "etl/daily", "--", "sh", "-c", "echo must not run"});
  EXPECT_EQ(untrusted.exit_code, 69) << untrusted.err;  // the store cannot be reached
  EXPECT_EQ(untrusted.out, "");
  EXPECT_NE(untrusted.err.find("certificate is not trusted"), std::string::npos) << untrusted.err;

  EXPECT_EQ(aecd.stop(), 0) << aecd.log();
}

TEST(AecdTls, AKeyThatIsNotTheCertificatesStopsStartupWithTheUsageCode) {
  TempDir dir;
  TestCertFiles cert = write_test_cert(dir.path());
  TestCertFiles other = write_test_cert(dir.path(), "other");
  Output out = run_aec({"serve", "--listen", "127.0.0.1:0", "--store", "memory:", "--tls-cert",
                        cert.cert, "--tls-key", other.key});
  EXPECT_EQ(out.exit_code, 64) << out.err;
  // One line (after the warning about anonymous access) says what is wrong with which file.
  std::size_t at = out.err.find("aec serve: error: ");
  ASSERT_NE(at, std::string::npos) << out.err;
  std::string line = out.err.substr(at, out.err.find('\n', at) - at);
  EXPECT_NE(line.find("does not match"), std::string::npos) << line;
  EXPECT_NE(line.find(other.key), std::string::npos) << line;
  EXPECT_EQ(at + line.size() + 1, out.err.size()) << "more after the error: " << out.err;
}

}  // namespace
}  // namespace aec::e2e
