// The HTTP listener over TLS, with a certificate from the deployment CA (pki.h), checked with
// curl as a client: HTTPS works, plain HTTP and TLS 1.1 do not, and an exposed key is refused.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "hub/http_server.h"
#include "pki.h"
#include "test_support/process.h"

namespace instrumeter::hub {
namespace {

using ::testing::HasSubstr;

class HttpTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SystemClock clock;
    auto ca = CertificateAuthority::Init(dir_.File("ca"), {"127.0.0.1"}, clock.WallUnixMs());
    ASSERT_TRUE(ca.ok()) << ca.status().ToString();
    router_.Add("GET", "/hello", [](const HttpRequest&) { return JsonResponse(200, {{"hi", 1}}); });
    options_.listen = "127.0.0.1:0";
    options_.tls_cert_file = dir_.File("ca") + "/broker.crt";
    options_.tls_key_file = dir_.File("ca") + "/broker.key";
  }
  int Curl(const std::vector<std::string>& args, std::string* out) {
    std::vector<std::string> argv = {"/usr/bin/curl", "--silent", "--show-error", "--max-time",
                                     "5"};
    argv.insert(argv.end(), args.begin(), args.end());
    return instrumeter::testing::RunCommand(argv, out);
  }

  instrumeter::testing::TempDir dir_;
  Router router_;
  HttpServerStats stats_;
  HttpServerOptions options_;
};

TEST_F(HttpTlsTest, ServesHttpsOnlyWithTls12OrNewer) {
  auto server = HttpServer::Start(options_, &router_, &stats_);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  const std::string base = "127.0.0.1:" + std::to_string((*server)->port());
  std::string out;
  ASSERT_EQ(Curl({"--cacert", dir_.File("ca") + "/ca.crt", "https://" + base + "/hello"}, &out), 0)
      << out;
  EXPECT_THAT(out, HasSubstr("\"hi\":1"));
  EXPECT_NE(Curl({"http://" + base + "/hello"}, &out), 0) << "plain HTTP on the TLS port";
  EXPECT_NE(Curl({"--cacert", dir_.File("ca") + "/ca.crt", "--tlsv1.1", "--tls-max", "1.1",
                  "https://" + base + "/hello"},
                 &out),
            0)
      << "TLS 1.1";
  EXPECT_NE(Curl({"https://" + base + "/hello"}, &out), 0)
      << "a client that does not trust the deployment CA";
}

TEST_F(HttpTlsTest, RefusesAKeyOthersCanRead) {
  ASSERT_EQ(::chmod(options_.tls_key_file.c_str(), 0644), 0);
  auto server = HttpServer::Start(options_, &router_, &stats_);
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(), HasSubstr("tls_key_file"));
}

}  // namespace
}  // namespace instrumeter::hub
