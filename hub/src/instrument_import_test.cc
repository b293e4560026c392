#include "hub/instrument_import.h"

#include <gtest/gtest.h>

namespace instrumeter::hub {
namespace {

constexpr char kHeader[] = "instrument_id,name,institution,site,city,region\n";

TEST(InstrumentImportTest, CsvWithQuotingBomAndCrlf) {
  const std::string text = std::string("\xEF\xBB\xBF") +
                           "region,instrument_id,name,institution,site,city\r\n"
                           "Shanghai,nmr-1,\"NMR 600, cryoprobe\",Fudan,\"Jiangwan \"\"B\"\"\","
                           "Shanghai\r\n"
                           "\r\n"
                           "Zhejiang, tem-2 ,TEM,\xE6\xB5\x99\xE6\xB1\x9F\xE5\xA4\xA7\xE5\xAD\xA6,"
                           "Zijingang,Hangzhou\r\n";
  Result<std::vector<Instrument>> rows = ParseInstrumentsCsv(text, "i.csv");
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0], (Instrument{"nmr-1", "NMR 600, cryoprobe", "Fudan", "Jiangwan \"B\"",
                                    "Shanghai", "Shanghai", 0}));
  EXPECT_EQ((*rows)[1].instrument_id, "tem-2");
  EXPECT_EQ((*rows)[1].institution, "\xE6\xB5\x99\xE6\xB1\x9F\xE5\xA4\xA7\xE5\xAD\xA6");
}

TEST(InstrumentImportTest, CsvErrorsNameTheLineAndTheField) {
  const auto error = [](const std::string& text) {
    Result<std::vector<Instrument>> rows = ParseInstrumentsCsv(text, "i.csv");
    EXPECT_FALSE(rows.ok());
    return rows.ok() ? std::string() : rows.status().message();
  };
  EXPECT_EQ(error(std::string(kHeader) + "nmr-1,a,b,c,d,e\n,a,b,c,d,e\n"),
            "i.csv:3: field 'instrument_id': missing");
  EXPECT_NE(
      error(std::string(kHeader) + "nmr 1,a,b,c,d,e\n").find("i.csv:2: field 'instrument_id'"),
      std::string::npos);
  EXPECT_EQ(error(std::string(kHeader) + "nmr-1,a,b,c,d,e\nx,a,b,c,d,e\nnmr-1,a,b,c,d,e\n"),
            "i.csv:4: field 'instrument_id': duplicate id 'nmr-1' (first on line 2)");
  // A quoted line break: the record after it starts on line 4.
  EXPECT_EQ(error(std::string(kHeader) + "nmr-1,\"two\nlines\",b,c,d,e\n,a,b,c,d,e\n"),
            "i.csv:4: field 'instrument_id': missing");
  EXPECT_NE(error("instrument_id,name,institute,site,city,region\n").find("field 'institute'"),
            std::string::npos);
  EXPECT_NE(error("instrument_id,name,site,city,region\n").find("field 'institution'"),
            std::string::npos);
  EXPECT_NE(error(std::string(kHeader) + "nmr-1,a,b\n").find("i.csv:2: 3 fields, expected 6"),
            std::string::npos);
  EXPECT_NE(error(std::string(kHeader) + "nmr-1,\"open,b,c,d,e\n").find("not closed"),
            std::string::npos);
  EXPECT_NE(error("").find("empty file"), std::string::npos);
}

TEST(InstrumentImportTest, JsonRowsAndErrorsWithLines) {
  Result<std::vector<Instrument>> rows = ParseInstrumentsJson(R"([
  {"instrument_id": "nmr-1", "name": "NMR", "institution": "Fudan", "site": "Jiangwan",
   "city": "Shanghai", "region": "Shanghai"},
  {"instrument_id": "tem-2", "name": "TEM"}
])",
                                                              "i.json");
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].site, "Jiangwan");
  EXPECT_EQ((*rows)[1].city, "");

  const auto error = [](const std::string& text) {
    Result<std::vector<Instrument>> r = ParseInstrumentsJson(text, "i.json");
    EXPECT_FALSE(r.ok());
    return r.ok() ? std::string() : r.status().message();
  };
  EXPECT_EQ(error("[\n  {\"instrument_id\": \"a\"},\n  {\"name\": \"no id\"}\n]"),
            "i.json:3: field 'instrument_id': missing");
  EXPECT_EQ(error("[\n  {\"instrument_id\": \"a\"},\n\n  {\"instrument_id\": \"a\"}\n]"),
            "i.json:4: field 'instrument_id': duplicate id 'a' (first on line 2)");
  EXPECT_EQ(error("[{\"instrument_id\": \"a/b\"}]").substr(0, 32),
            "i.json:1: field 'instrument_id':");
  EXPECT_EQ(error("[\n{\"instrument_id\": \"a\", \"nmae\": \"x\"}]").substr(0, 24),
            "i.json:2: field 'nmae': ");
  EXPECT_EQ(error("[\n{\"instrument_id\": 7}]"),
            "i.json:2: field 'instrument_id': must be a string");
  EXPECT_EQ(error("[\n{\"instrument_id\": \"a\",\n}"), "i.json:3: not valid JSON");
  EXPECT_EQ(error("[{\"instrument_id\": \"a\", \"rate_fen_per_hour\": -1E999}]"),
            "i.json: not valid JSON: number overflow parsing '-1E999'");
  EXPECT_NE(error("{\"instrument_id\": \"a\"}").find("expected an array"), std::string::npos);
}

TEST(InstrumentImportTest, FileTypeComesFromTheExtension) {
  Result<std::vector<Instrument>> r = ReadInstrumentsFile("/tmp/instruments.xlsx");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(".csv or .json"), std::string::npos);
  EXPECT_EQ(ReadInstrumentsFile("/nonexistent/i.CSV").status().code(), Status::Code::kNotFound);
}

}  // namespace
}  // namespace instrumeter::hub
