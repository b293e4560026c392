#include "hub/ledger.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "common/sqlite_db.h"
#include "hub/sqlite_store.h"
#include "test_support/process.h"

namespace instrumeter::hub {
namespace {

std::string AmountResult(int64_t amount_fen) {
  return "{\"charges\":{\"amount_fen\":" + std::to_string(amount_fen) + "}}";
}

// Appends one entry per (subject, amount): a session entry, or an amendment of the subject's
// latest entry; as the driver does, inside one transaction.
void Append(Store* store, const std::vector<std::pair<std::string, int64_t>>& items) {
  Status st = store->InLedgerTransaction([&](LedgerTxn* tx) -> Status {
    Result<LedgerHead> head = tx->Head();
    if (!head.ok()) return head.status();
    for (const auto& [subject, amount] : items) {
      Result<std::optional<LedgerEntry>> latest = tx->Latest(subject);
      if (!latest.ok()) return latest.status();
      Result<LedgerEntry> e =
          MakeLedgerEntry(*head, "session", subject, 1'000, 2'000, AmountResult(amount),
                          latest->has_value() ? &**latest : nullptr);
      if (!e.ok()) return e.status();
      INSTRUMETER_RETURN_IF_ERROR(tx->Append(*e));
      *head = {e->entry_id, e->hash};
    }
    return Status::Ok();
  });
  ASSERT_TRUE(st.ok()) << st.ToString();
}

class LedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<Store>> store = OpenSqliteStore({.path = path_});
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    // Entries 1-5 are sessions; 6, 7 and 8 amend 2, 4 and 6.
    Append(store_.get(), {{"session/A", 100},
                          {"session/B", 200},
                          {"session/C", 300},
                          {"session/D", 400},
                          {"session/E", 500}});
    Append(store_.get(), {{"session/B", 250}, {"session/D", 0}, {"session/B", 260}});
  }

  // Edits the database file behind the hub's back, as someone with the file could.
  void Tamper(const std::string& sql) {
    Result<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(path_, {});
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    Status st = (*db)->Exec("DROP TRIGGER ledger_no_update; DROP TRIGGER ledger_no_delete; " + sql);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }

  LedgerEntry Entry(int64_t id) {
    Result<std::vector<LedgerEntry>> rows = store_->ReadLedger(id - 1, 1);
    EXPECT_TRUE(rows.ok() && rows->size() == 1);
    return rows.ok() && !rows->empty() ? rows->front() : LedgerEntry{};
  }

  // The entry VerifyLedger names; nullopt when the chain checks out.
  std::optional<int64_t> Broken(const std::vector<LedgerAnchor>& anchors = {}) {
    Result<LedgerCheck> check = VerifyLedger(store_.get(), anchors);
    EXPECT_TRUE(check.ok()) << check.status().ToString();
    if (!check.ok() || !check->broken.has_value()) return std::nullopt;
    reason_ = check->broken->reason;
    return check->broken->entry_id;
  }

  instrumeter::testing::TempDir dir_;
  std::string path_ = dir_.File("hub.db");
  std::unique_ptr<Store> store_;
  std::string reason_;
};

TEST(LedgerHashTest, Sha256AndChain) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(ChainHash(kGenesisHash, "abc"), Sha256Hex(std::string(kGenesisHash) + "abc"));
}

TEST_F(LedgerTest, EntriesAreCanonicalAndChained) {
  Result<LedgerCheck> check = VerifyLedger(store_.get());
  ASSERT_TRUE(check.ok());
  EXPECT_FALSE(check->broken.has_value()) << check->broken->reason;
  EXPECT_EQ(check->entries, 8);
  EXPECT_EQ(check->last.entry_id, 8);

  const LedgerEntry first = Entry(1);
  EXPECT_EQ(first.prev_hash, kGenesisHash);
  EXPECT_EQ(first.content,
            "{\"entry_id\":1,\"format_version\":1,\"kind\":\"session\",\"recorded_unix_ms\":2000,"
            "\"result\":{\"charges\":{\"amount_fen\":100}},\"subject\":\"session/A\","
            "\"subject_kind\":\"session\",\"subject_time_unix_ms\":1000}");
  EXPECT_EQ(first.hash, ChainHash(kGenesisHash, first.content));

  const LedgerEntry amendment = Entry(8);
  EXPECT_EQ(amendment.kind, "amendment");
  const nlohmann::json c = nlohmann::json::parse(amendment.content);
  EXPECT_EQ(c["amends_entry_id"], 6);  // the subject's latest entry, not its first
  EXPECT_EQ(c["delta"]["amount_fen"], 10);
  EXPECT_EQ(c["subject_kind"], "session");
  EXPECT_EQ(amendment.prev_hash, Entry(7).hash);
}

TEST(LedgerEntryTest, ContentIsWhatCanonicalJsonWouldBe) {
  const std::string subject = "session/ORD \"7\" \xe6\xa0\xb7\xe5\x93\x81\\x";  // quotes, CJK
  const std::string result =
      nlohmann::json::parse(R"({"b":{"z":1,"a":[1,2,{"y":"\u0001"}]},"a":-5,"s":"\u6837"})").dump();
  Result<LedgerEntry> first =
      MakeLedgerEntry({0, kGenesisHash}, "session", subject, -7, 9, result, nullptr);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(nlohmann::json::parse(first->content).dump(), first->content);
  Result<LedgerEntry> second =
      MakeLedgerEntry({1, first->hash}, "session", subject, -7, 10, result, &*first);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(nlohmann::json::parse(second->content).dump(), second->content);
  EXPECT_EQ(second->kind, "amendment");
  EXPECT_EQ(second->prev_hash, first->hash);
  EXPECT_EQ(second->hash, ChainHash(first->hash, second->content));
}

TEST(LedgerEntryTest, ResultsAreCanonicalJson) {
  Booking b;
  b.order_id = "ORD-\"1\"";
  b.instrument_id = "nmr-1";
  b.customer = {"\xe8\x8b\x8f\xe5\xb7\x9e Bio \\ Co", "Suzhou\b", "Jiangsu\f\t\x01"};
  b.start_unix_ms = -5;
  b.end_unix_ms = 3'600'000;
  b.remote = true;
  b.operator_name = "Li / Wei";
  b.voucher = Voucher{"JS-1", "Jiangsu", 40, 1'000, Redemption::kReimburse};
  Instrument in{"nmr-1", "NMR \xff\xfe 600", "Fudan\x7f", "", "Shanghai", "Shanghai", 0};
  SessionMeasure m;
  m.attribution = {-600'000, 4'200'000};
  m.clock_offset_ms = -120;
  m.flags = kSessionGap | kSessionMarkOtherOrder;
  m.other_order_marks = {"A", "B"};
  m.status = SessionStatus::kDisputed;
  const std::string session = SessionResultJson(b, in, m, Charges{1, 2, 3, 4, 5, 6, 7});
  EXPECT_EQ(nlohmann::json::parse(session).dump(), session);
  m.clock_offset_ms.reset();
  b.voucher.reset();
  const std::string plain = SessionResultJson(b, in, m, Charges{});
  EXPECT_EQ(nlohmann::json::parse(plain).dump(), plain);
  EXPECT_NE(plain.find("NMR \xef\xbf\xbd\xef\xbf\xbd 600"), std::string::npos)
      << "bytes that are not UTF-8 become U+FFFD";

  UnbookedMeasure u;
  u.day = {0, 86'400'000};
  u.in_use_ms = 7;
  u.stretches = {{1, 3}, {5, 10}};
  const std::string unbooked = UnbookedResultJson(in, "2026-01-01", u);
  EXPECT_EQ(nlohmann::json::parse(unbooked).dump(), unbooked);
}

TEST_F(LedgerTest, TheStoreRefusesAnEntryThatDoesNotFollowTheHead) {
  Status st = store_->InLedgerTransaction([](LedgerTxn* tx) -> Status {
    Result<LedgerEntry> e =
        MakeLedgerEntry({3, kGenesisHash}, "session", "session/X", 0, 0, AmountResult(1), nullptr);
    if (!e.ok()) return e.status();
    return tx->Append(*e);
  });
  EXPECT_EQ(st.code(), Status::Code::kInternal);
  EXPECT_EQ(Broken(), std::nullopt) << "nothing was written";
}

TEST_F(LedgerTest, TriggersRefuseEditsThroughSql) {
  Result<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(path_, {});
  ASSERT_TRUE(db.ok());
  EXPECT_FALSE((*db)->Exec("UPDATE ledger SET content = '{}' WHERE entry_id = 2").ok());
  EXPECT_FALSE((*db)->Exec("DELETE FROM ledger WHERE entry_id = 8").ok());
}

TEST_F(LedgerTest, ChangedContentIsNamed) {
  Tamper("UPDATE ledger SET content = replace(content, '200', '2000') WHERE entry_id = 2");
  EXPECT_EQ(Broken(), 2);
  EXPECT_NE(reason_.find("hash does not match its content"), std::string::npos) << reason_;
}

TEST_F(LedgerTest, ChangedContentWithItsHashRecomputedBreaksTheNextLink) {
  LedgerEntry e = Entry(3);
  std::string forged = e.content;
  forged.replace(forged.find("300"), 3, "301");
  Tamper("UPDATE ledger SET content = '" + forged + "', hash = '" + ChainHash(e.prev_hash, forged) +
         "' WHERE entry_id = 3");
  EXPECT_EQ(Broken(), 4);
  EXPECT_NE(reason_.find("prev_hash does not match the hash of entry 3"), std::string::npos)
      << reason_;
}

TEST_F(LedgerTest, ChangedColumnsAreNamed) {
  Tamper("UPDATE ledger SET subject = 'session/Z' WHERE entry_id = 5");
  EXPECT_EQ(Broken(), 5);
  EXPECT_NE(reason_.find("column differs from its content"), std::string::npos) << reason_;
}

TEST_F(LedgerTest, ChangedPrevHashIsNamed) {
  Tamper("UPDATE ledger SET prev_hash = '" + std::string(64, 'f') + "' WHERE entry_id = 6");
  EXPECT_EQ(Broken(), 6);
}

TEST_F(LedgerTest, DeletedEntryIsNamed) {
  Tamper("DELETE FROM ledger WHERE entry_id = 4");
  EXPECT_EQ(Broken(), 4);
  EXPECT_NE(reason_.find("entry 4 is missing"), std::string::npos) << reason_;
}

TEST_F(LedgerTest, DeletedFirstEntryIsNamed) {
  Tamper("DELETE FROM ledger WHERE entry_id = 1");
  EXPECT_EQ(Broken(), 1);
}

TEST_F(LedgerTest, DeletedTailIsNamedByTheRecordedHead) {
  Tamper("DELETE FROM ledger WHERE entry_id >= 7");
  EXPECT_EQ(Broken(), 7);
  EXPECT_NE(reason_.find("entries from 7 on were deleted"), std::string::npos) << reason_;
}

TEST_F(LedgerTest, DeletedTailWithTheHeadMovedBackNeedsAnAnchor) {
  const LedgerEntry last = Entry(8);
  const LedgerEntry seventh = Entry(7);
  Tamper("DELETE FROM ledger WHERE entry_id = 8; UPDATE ledger_head SET entry_id = 7, hash = '" +
         seventh.hash + "'");
  EXPECT_EQ(Broken(), std::nullopt)
      << "a consistent truncation is invisible without an outside anchor";
  EXPECT_EQ(Broken({{8, last.hash}}), 8);
  EXPECT_NE(reason_.find("not in the ledger"), std::string::npos) << reason_;
}

TEST_F(LedgerTest, ReorderedEntriesAreNamed) {
  Tamper(
      "UPDATE ledger SET entry_id = -5 WHERE entry_id = 5; "
      "UPDATE ledger SET entry_id = 5 WHERE entry_id = 6; "
      "UPDATE ledger SET entry_id = 6 WHERE entry_id = -5;");
  EXPECT_EQ(Broken(), 5);
}

TEST_F(LedgerTest, InsertedEntriesAreNamed) {
  // A copy of entry 3 slipped in as entry 9, without moving the head.
  Tamper(
      "INSERT INTO ledger(entry_id, kind, subject, subject_time_unix_ms, content, prev_hash, hash)"
      " SELECT 9, kind, subject, subject_time_unix_ms, content, prev_hash, hash FROM ledger"
      " WHERE entry_id = 3");
  EXPECT_EQ(Broken(), 9);
}

TEST_F(LedgerTest, RowsBelowTheFirstEntryAreSeen) {
  Tamper(
      "INSERT INTO ledger(entry_id, kind, subject, subject_time_unix_ms, content, prev_hash, hash)"
      " SELECT 0, kind, 'session/F', subject_time_unix_ms, content, prev_hash, hash FROM ledger"
      " WHERE entry_id = 1");
  EXPECT_EQ(Broken(), 0);
  EXPECT_NE(reason_.find("entry 0 is out of sequence"), std::string::npos) << reason_;
}

TEST_F(LedgerTest, AFullyRewrittenChainIsCaughtByAnAnchor) {
  const LedgerEntry sixth = Entry(6);
  // Someone rewrites entry 2 and recomputes every later hash and the head: a consistent chain.
  Result<std::vector<LedgerEntry>> all = store_->ReadLedger(0, 100);
  ASSERT_TRUE(all.ok());
  std::string sql;
  std::string prev = kGenesisHash;
  for (LedgerEntry e : *all) {
    if (e.entry_id == 2)
      e.content.replace(e.content.find("\"amount_fen\":200"), 16, "\"amount_fen\":20");
    e.prev_hash = prev;
    e.hash = ChainHash(prev, e.content);
    prev = e.hash;
    sql += "UPDATE ledger SET content = '" + e.content + "', prev_hash = '" + e.prev_hash +
           "', hash = '" + e.hash + "' WHERE entry_id = " + std::to_string(e.entry_id) + ";";
  }
  sql += "UPDATE ledger_head SET hash = '" + prev + "';";
  Tamper(sql);
  EXPECT_EQ(Broken(), std::nullopt);
  EXPECT_EQ(Broken({{6, sixth.hash}}), 6);
  EXPECT_NE(reason_.find("differs from the anchor"), std::string::npos) << reason_;
}

TEST(LedgerAnchorTest, Parse) {
  Result<LedgerAnchor> a = ParseLedgerAnchor("12:" + std::string(64, 'a'));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->entry_id, 12);
  EXPECT_FALSE(ParseLedgerAnchor("12").ok());
  EXPECT_FALSE(ParseLedgerAnchor("x:" + std::string(64, 'a')).ok());
  EXPECT_FALSE(ParseLedgerAnchor("0:" + std::string(64, 'a')).ok());
  EXPECT_FALSE(ParseLedgerAnchor("3:abc").ok());
}

TEST_F(LedgerTest, FeedYieldsEveryEntryOnceWithAnyPageSize) {
  for (int i = 0; i < 29; ++i) Append(store_.get(), {{"session/N" + std::to_string(i), i}});
  const int64_t total = 37;
  for (int64_t limit = 1; limit <= total + 2; ++limit) {
    std::vector<int64_t> seen;
    std::string cursor;
    bool more = true;
    while (more) {
      Result<FeedPage> page = ReadBillingFeed(store_.get(), cursor, limit);
      ASSERT_TRUE(page.ok()) << page.status().ToString();
      ASSERT_LE(static_cast<int64_t>(page->entries.size()), limit);
      // Reading again from the same cursor gives the same page.
      Result<FeedPage> again = ReadBillingFeed(store_.get(), cursor, limit);
      ASSERT_TRUE(again.ok());
      ASSERT_EQ(again->entries, page->entries);
      for (const LedgerEntry& e : page->entries) seen.push_back(e.entry_id);
      more = page->more;
      cursor = page->next_cursor;
    }
    ASSERT_EQ(static_cast<int64_t>(seen.size()), total) << "limit " << limit;
    for (int64_t i = 0; i < total; ++i) ASSERT_EQ(seen[static_cast<size_t>(i)], i + 1);
    // At the end: an empty page that keeps the cursor, then only what is appended later.
    Result<FeedPage> end = ReadBillingFeed(store_.get(), cursor, limit);
    ASSERT_TRUE(end.ok());
    EXPECT_TRUE(end->entries.empty());
    EXPECT_EQ(end->next_cursor, cursor);
  }
  const std::string cursor = std::to_string(total);
  Append(store_.get(), {{"session/A", 111}});
  Result<FeedPage> page = ReadBillingFeed(store_.get(), cursor, 10);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->entries.size(), 1u);
  EXPECT_EQ(page->entries[0].kind, "amendment");
  EXPECT_EQ(page->next_cursor, "38");
}

TEST_F(LedgerTest, FeedRefusesBadCursorsAndLimits) {
  EXPECT_EQ(ReadBillingFeed(store_.get(), "abc", 10).status().code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(ReadBillingFeed(store_.get(), "-1", 10).status().code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(ReadBillingFeed(store_.get(), "", 0).status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(ReadBillingFeed(store_.get(), "", kMaxFeedLimit + 1).status().code(),
            Status::Code::kInvalidArgument);
}

TEST_F(LedgerTest, FeedJsonCarriesTheExactContent) {
  Result<FeedPage> page = ReadBillingFeed(store_.get(), "7", 5);
  ASSERT_TRUE(page.ok());
  const nlohmann::json doc = nlohmann::json::parse(FeedPageJson(*page));
  ASSERT_EQ(doc["entries"].size(), 1u);
  EXPECT_EQ(doc["next_cursor"], "8");
  EXPECT_EQ(doc["more"], false);
  const nlohmann::json& e = doc["entries"][0];
  EXPECT_EQ(ChainHash(e["prev_hash"].get<std::string>(), e["content"].get<std::string>()),
            e["hash"]);
}

}  // namespace
}  // namespace instrumeter::hub
