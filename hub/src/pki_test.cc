// The deployment CA (pki.h): never overwritten, certificates that chain to it with the right
// names and uses, a CRL that lists what was revoked. `openssl` inspects the files.
#include "pki.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "test_support/process.h"

namespace instrumeter::hub {
namespace {

using ::testing::HasSubstr;
constexpr int64_t kNow = 1'767'225'600'000;

unsigned Mode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

std::string OpenSsl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/usr/bin/openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string out;
  EXPECT_EQ(instrumeter::testing::RunCommand(argv, &out), 0) << out;
  return out;
}

TEST(PkiTest, InitMakesAnAuthorityItNeverOverwrites) {
  instrumeter::testing::TempDir tmp;
  const std::string dir = tmp.File("ca");
  auto ca = CertificateAuthority::Init(dir, {"broker.example", "10.0.0.5"}, kNow);
  ASSERT_TRUE(ca.ok()) << ca.status().ToString();
  EXPECT_EQ(Mode(dir), 0700u);
  for (const char* key : {"/ca.key", "/hub.key", "/broker.key"}) EXPECT_EQ(Mode(dir + key), 0600u);
  EXPECT_THAT(
      OpenSsl({"verify", "-CAfile", dir + "/ca.crt", dir + "/hub.crt", dir + "/broker.crt"}),
      HasSubstr("broker.crt: OK"));
  const std::string hub =
      OpenSsl({"x509", "-in", dir + "/hub.crt", "-noout", "-subject", "-ext", "extendedKeyUsage"});
  EXPECT_THAT(hub, HasSubstr("CN = instrumeter-hub"));
  EXPECT_THAT(hub, HasSubstr("TLS Web Client Authentication"));
  const std::string broker =
      OpenSsl({"x509", "-in", dir + "/broker.crt", "-noout", "-ext", "subjectAltName"});
  EXPECT_THAT(broker, HasSubstr("DNS:broker.example"));
  EXPECT_THAT(broker, HasSubstr("IP Address:10.0.0.5"));
  const std::string before = instrumeter::testing::ReadFile(dir + "/ca.key");
  auto again = CertificateAuthority::Init(dir, {"x"}, kNow);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), Status::Code::kAlreadyExists);
  EXPECT_EQ(instrumeter::testing::ReadFile(dir + "/ca.key"), before);
}

TEST(PkiTest, IssuesDeviceCertificatesAndRevokesThemInTheCrl) {
  instrumeter::testing::TempDir tmp;
  const std::string dir = tmp.File("ca");
  ASSERT_TRUE(CertificateAuthority::Init(dir, {"localhost"}, kNow).ok());
  auto ca = CertificateAuthority::Open(dir);
  ASSERT_TRUE(ca.ok()) << ca.status().ToString();
  auto device = ca->IssueClient("nmr-600", kNow);
  ASSERT_TRUE(device.ok());
  instrumeter::testing::WriteFile(tmp.File("device.crt"), device->certificate_pem);
  EXPECT_THAT(OpenSsl({"verify", "-CAfile", dir + "/ca.crt", tmp.File("device.crt")}),
              HasSubstr("OK"));
  EXPECT_THAT(OpenSsl({"x509", "-in", tmp.File("device.crt"), "-noout", "-subject", "-serial"}),
              HasSubstr("serial=" + device->serial_hex));
  ASSERT_TRUE(ca->WriteCrl({{device->serial_hex, kNow}}, kNow).ok());
  EXPECT_THAT(OpenSsl({"crl", "-in", dir + "/crl.pem", "-noout", "-text"}),
              HasSubstr("Serial Number: " + device->serial_hex));
  std::string out;
  EXPECT_NE(instrumeter::testing::RunCommand(
                {"/usr/bin/openssl", "verify", "-crl_check", "-CAfile", dir + "/ca.crt", "-CRLfile",
                 dir + "/crl.pem", tmp.File("device.crt")},
                &out),
            0)
      << out;
  EXPECT_THAT(out, HasSubstr("revoked"));
}

TEST(PkiTest, OpenRefusesAnExposedAuthorityKey) {
  instrumeter::testing::TempDir tmp;
  const std::string dir = tmp.File("ca");
  ASSERT_TRUE(CertificateAuthority::Init(dir, {"localhost"}, kNow).ok());
  ASSERT_EQ(::chmod((dir + "/ca.key").c_str(), 0640), 0);
  EXPECT_FALSE(CertificateAuthority::Open(dir).ok());
}

}  // namespace
}  // namespace instrumeter::hub
