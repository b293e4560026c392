#include "sqlite_billing.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "hub/ledger.h"

namespace instrumeter::hub {

// Append only, like every migration: a released one is never edited.
const char kBillingMigration[] = R"sql(
-- Per-instrument overrides of the [billing] defaults; NULL: the default applies.
CREATE TABLE billing_rules(
  instrument_id TEXT PRIMARY KEY,
  rate_fen_per_hour INTEGER,
  billing_unit_seconds INTEGER,
  minimum_charge_seconds INTEGER,
  rounding TEXT CHECK(rounding IN ('up', 'down', 'nearest')),
  allowed_overrun_seconds INTEGER,
  grace_before_seconds INTEGER,
  grace_after_seconds INTEGER
);
-- Orders, with the rules resolved when they were imported. voucher_id NULL: no voucher.
CREATE TABLE bookings(
  order_id TEXT PRIMARY KEY,
  instrument_id TEXT NOT NULL,
  customer_organisation TEXT NOT NULL,
  customer_city TEXT NOT NULL,
  customer_region TEXT NOT NULL,
  start_unix_ms INTEGER NOT NULL,
  end_unix_ms INTEGER NOT NULL CHECK(end_unix_ms > start_unix_ms),
  remote INTEGER NOT NULL,
  operator_name TEXT NOT NULL,
  rate_fen_per_hour INTEGER NOT NULL,
  billing_unit_seconds INTEGER NOT NULL,
  minimum_charge_seconds INTEGER NOT NULL,
  rounding TEXT NOT NULL,
  allowed_overrun_seconds INTEGER NOT NULL,
  grace_before_seconds INTEGER NOT NULL,
  grace_after_seconds INTEGER NOT NULL,
  voucher_id TEXT,
  voucher_issuing_region TEXT,
  voucher_covered_percent INTEGER,
  voucher_cap_fen INTEGER,
  voucher_redemption TEXT,
  revision INTEGER NOT NULL,
  updated_unix_ms INTEGER NOT NULL,
  ledger_entry_id INTEGER
);
CREATE INDEX bookings_by_instrument ON bookings(instrument_id, start_unix_ms);
CREATE INDEX bookings_unverified ON bookings(end_unix_ms) WHERE ledger_entry_id IS NULL;
-- Wall ranges whose telemetry or bookings changed since verification last looked.
CREATE TABLE billing_dirty(
  instrument_id TEXT PRIMARY KEY,
  from_unix_ms INTEGER NOT NULL,
  to_unix_ms INTEGER NOT NULL,
  version INTEGER NOT NULL
);
-- Per device-hour (agent wall time): the least clock offset of fresh heartbeats, and when
-- sources disagreed.
CREATE TABLE device_hours(
  dev_key INTEGER NOT NULL,
  hour_start_unix_ms INTEGER NOT NULL,
  fresh_samples INTEGER NOT NULL,
  fresh_offset_min_ms INTEGER,
  disagreement_first_wall_ms INTEGER,
  disagreement_last_wall_ms INTEGER,
  PRIMARY KEY(dev_key, hour_start_unix_ms)
) WITHOUT ROWID;
-- SessionMarks (kind 12) by time, without indexing any other event.
CREATE INDEX events_session_marks ON events(dev_key, wall_unix_ms) WHERE kind = 12;
CREATE TABLE unbooked_progress(
  instrument_id TEXT PRIMARY KEY,
  evaluated_until_unix_ms INTEGER NOT NULL
);
CREATE TABLE ledger(
  entry_id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  subject TEXT NOT NULL,
  subject_time_unix_ms INTEGER NOT NULL,
  content TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE INDEX ledger_by_subject ON ledger(subject, entry_id);
-- Only stops mistakes: whoever can edit the file can drop these; the hash chain tells.
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
  BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
  BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TABLE ledger_head(
  one INTEGER PRIMARY KEY CHECK(one = 1),
  entry_id INTEGER NOT NULL,
  hash TEXT NOT NULL
);
)sql";

namespace {

constexpr int64_t kHourMs = 3'600'000;

constexpr char kBookingColumns[] =
    "order_id, instrument_id, customer_organisation, customer_city, customer_region, "
    "start_unix_ms, end_unix_ms, remote, operator_name, rate_fen_per_hour, billing_unit_seconds, "
    "minimum_charge_seconds, rounding, allowed_overrun_seconds, grace_before_seconds, "
    "grace_after_seconds, voucher_id, voucher_issuing_region, voucher_covered_percent, "
    "voucher_cap_fen, voucher_redemption, revision, updated_unix_ms, ledger_entry_id";
constexpr char kLedgerColumns[] =
    "entry_id, kind, subject, subject_time_unix_ms, content, prev_hash, hash";
constexpr char kRuleColumns[] =
    "rate_fen_per_hour, billing_unit_seconds, minimum_charge_seconds, rounding, "
    "allowed_overrun_seconds, grace_before_seconds, grace_after_seconds";

int64_t FloorTo(int64_t t, int64_t unit) {
  const int64_t q = t / unit;
  return (t % unit != 0 && t < 0 ? q - 1 : q) * unit;
}

Result<Booking> ReadBooking(const SqliteStatement& s) {
  Booking b;
  b.order_id = s.Text(0);
  b.instrument_id = s.Text(1);
  b.customer = {s.Text(2), s.Text(3), s.Text(4)};
  b.start_unix_ms = s.Int(5);
  b.end_unix_ms = s.Int(6);
  b.remote = s.Int(7) != 0;
  b.operator_name = s.Text(8);
  BillingRules& r = b.rules;
  r.rate_fen_per_hour = s.Int(9);
  r.billing_unit_seconds = s.Int(10);
  r.minimum_charge_seconds = s.Int(11);
  if (!ParseRounding(s.Text(12), &r.rounding))
    return Status::Corruption("booking '" + b.order_id + "': unknown rounding '" + s.Text(12) +
                              "'");
  r.allowed_overrun_seconds = s.Int(13);
  r.grace_before_seconds = s.Int(14);
  r.grace_after_seconds = s.Int(15);
  if (!s.IsNull(16)) {
    Voucher v;
    v.voucher_id = s.Text(16);
    v.issuing_region = s.Text(17);
    v.covered_percent = s.Int(18);
    v.cap_fen = s.Int(19);
    if (!ParseRedemption(s.Text(20), &v.redemption))
      return Status::Corruption("booking '" + b.order_id + "': unknown redemption '" + s.Text(20) +
                                "'");
    b.voucher = v;
  }
  b.revision = s.Int(21);
  b.updated_unix_ms = s.Int(22);
  if (!s.IsNull(23)) b.ledger_entry_id = s.Int(23);
  return b;
}

void BindBooking(SqliteStatement* s, const Booking& b) {
  s->Bind(1, b.order_id)
      .Bind(2, b.instrument_id)
      .Bind(3, b.customer.organisation)
      .Bind(4, b.customer.city)
      .Bind(5, b.customer.region)
      .Bind(6, b.start_unix_ms)
      .Bind(7, b.end_unix_ms)
      .Bind(8, int64_t{b.remote})
      .Bind(9, b.operator_name)
      .Bind(10, b.rules.rate_fen_per_hour)
      .Bind(11, b.rules.billing_unit_seconds)
      .Bind(12, b.rules.minimum_charge_seconds)
      .Bind(13, std::string_view(RoundingName(b.rules.rounding)))
      .Bind(14, b.rules.allowed_overrun_seconds)
      .Bind(15, b.rules.grace_before_seconds)
      .Bind(16, b.rules.grace_after_seconds);
  if (b.voucher.has_value()) {
    s->Bind(17, b.voucher->voucher_id)
        .Bind(18, b.voucher->issuing_region)
        .Bind(19, b.voucher->covered_percent)
        .Bind(20, b.voucher->cap_fen)
        .Bind(21, std::string_view(RedemptionName(b.voucher->redemption)));
  } else {
    for (int i = 17; i <= 21; ++i) s->BindNull(i);
  }
  s->Bind(22, b.revision).Bind(23, b.updated_unix_ms);
}

LedgerEntry ReadEntry(const SqliteStatement& s) {
  return {s.Int(0), s.Text(1), s.Text(2), s.Int(3), s.Text(4), s.Text(5), s.Text(6)};
}

// The time a booking's verification may look at: its window with its grace.
std::pair<int64_t, int64_t> GraceWindow(const Booking& b) {
  return {b.start_unix_ms - b.rules.grace_before_seconds * 1000,
          b.end_unix_ms + b.rules.grace_after_seconds * 1000};
}

Result<std::vector<LedgerEntry>> QueryEntries(SqliteStatement* s) {
  std::vector<LedgerEntry> out;
  while (true) {
    Result<bool> row = s->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back(ReadEntry(*s));
  }
  return out;
}

}  // namespace

// The writes of one verification commit; lives for one InLedgerTransaction call.
class SqliteBilling::Txn : public LedgerTxn {
 public:
  explicit Txn(SqliteBilling* billing) : billing_(billing) {}

  // Read once, then kept here; written back once by Finish().
  Result<LedgerHead> Head() override {
    if (!head_.has_value()) {
      Result<LedgerHead> head = billing_->ReadLedgerHead();
      if (!head.ok()) return head.status();
      head_ = *head;
    }
    return *head_;
  }

  Result<std::optional<LedgerEntry>> Latest(const std::string& subject) override {
    SqliteStatement& s = *billing_->latest_entry_;
    s.Reset();
    s.Bind(1, subject);
    Result<bool> row = s.Step();
    if (!row.ok()) return row.status();
    std::optional<LedgerEntry> out;
    if (*row) out = ReadEntry(s);
    s.Reset();
    return out;
  }

  Status Append(const LedgerEntry& e) override {
    Result<LedgerHead> head = Head();
    if (!head.ok()) return head.status();
    if (e.entry_id != head->entry_id + 1 || e.prev_hash != head->hash)
      return Status::Internal("ledger entry " + std::to_string(e.entry_id) +
                              " does not follow the head (entry " + std::to_string(head->entry_id) +
                              ")");
    SqliteStatement& insert = *billing_->insert_entry_;
    insert.Reset();
    insert.Bind(1, e.entry_id)
        .Bind(2, e.kind)
        .Bind(3, e.subject)
        .Bind(4, e.subject_time_unix_ms)
        .Bind(5, e.content)
        .Bind(6, e.prev_hash)
        .Bind(7, e.hash);
    INSTRUMETER_RETURN_IF_ERROR(
        insert.Run().WithContext("ledger entry " + std::to_string(e.entry_id)));
    head_ = LedgerHead{e.entry_id, e.hash};
    head_moved_ = true;
    return Status::Ok();
  }

  // Records the head beside the ledger, in the same transaction as the entries.
  Status Finish() {
    if (!head_moved_) return Status::Ok();
    SqliteStatement& head_row = *billing_->upsert_head_;
    head_row.Reset();
    head_row.Bind(1, head_->entry_id).Bind(2, head_->hash);
    return head_row.Run();
  }

  Status SetBookingEntry(const std::string& order_id, int64_t entry_id) override {
    SqliteStatement& s = *billing_->set_booking_entry_;
    s.Reset();
    s.Bind(1, entry_id).Bind(2, order_id);
    return s.Run();
  }

  Status SetUnbookedProgress(const std::string& instrument_id,
                             int64_t evaluated_until_unix_ms) override {
    SqliteStatement& s = *billing_->set_progress_;
    s.Reset();
    s.Bind(1, instrument_id).Bind(2, evaluated_until_unix_ms);
    return s.Run();
  }

  Status ClearDirtyRange(const DirtyRange& range) override {
    SqliteStatement& s = *billing_->clear_dirty_;
    s.Reset();
    s.Bind(1, range.instrument_id).Bind(2, range.version);
    return s.Run();
  }

 private:
  SqliteBilling* billing_;
  std::optional<LedgerHead> head_;
  bool head_moved_ = false;
};

Status SqliteBilling::Prepare() {
  struct Item {
    std::optional<SqliteStatement>* slot;
    std::string sql;
  };
  const Item items[] = {
      {&old_interval_,
       "SELECT state, start_wall_unix_ms, duration_ms, flags FROM intervals "
       "WHERE dev_key = ? AND kind = ? AND start_seq = ?"},
      {&wall_span_,
       "SELECT min(wall_unix_ms), max(wall_unix_ms) FROM events "
       "WHERE dev_key = ? AND seq BETWEEN ? AND ?"},
      {&mark_dirty_,
       "INSERT INTO billing_dirty(instrument_id, from_unix_ms, to_unix_ms, version) "
       "VALUES(?1, ?2, ?3, 1) ON CONFLICT(instrument_id) DO UPDATE SET "
       "from_unix_ms = min(from_unix_ms, excluded.from_unix_ms), "
       "to_unix_ms = max(to_unix_ms, excluded.to_unix_ms), version = version + 1"},
      {&upsert_hour_,
       "INSERT INTO device_hours(dev_key, hour_start_unix_ms, fresh_samples, "
       "fresh_offset_min_ms, disagreement_first_wall_ms, disagreement_last_wall_ms) "
       "VALUES(?,?,?,?,?,?) ON CONFLICT(dev_key, hour_start_unix_ms) DO UPDATE SET "
       "fresh_samples = fresh_samples + excluded.fresh_samples, "
       "fresh_offset_min_ms = min(coalesce(fresh_offset_min_ms, excluded.fresh_offset_min_ms), "
       "  coalesce(excluded.fresh_offset_min_ms, fresh_offset_min_ms)), "
       "disagreement_first_wall_ms = min(coalesce(disagreement_first_wall_ms, "
       "  excluded.disagreement_first_wall_ms), coalesce(excluded.disagreement_first_wall_ms, "
       "  disagreement_first_wall_ms)), "
       "disagreement_last_wall_ms = max(coalesce(disagreement_last_wall_ms, "
       "  excluded.disagreement_last_wall_ms), coalesce(excluded.disagreement_last_wall_ms, "
       "  disagreement_last_wall_ms))"},
      {&find_booking_,
       std::string("SELECT ") + kBookingColumns + " FROM bookings WHERE order_id = ?"},
      {&overlapping_bookings_,
       "SELECT order_id, start_unix_ms, end_unix_ms FROM bookings "
       "WHERE instrument_id = ?1 AND start_unix_ms > ?2 - " +
           std::to_string(kMaxBookingMs) +
           " AND start_unix_ms < ?3 AND end_unix_ms > ?2 ORDER BY start_unix_ms"},
      {&read_head_, "SELECT entry_id, hash FROM ledger_head WHERE one = 1"},
      {&insert_entry_,
       std::string("INSERT INTO ledger(") + kLedgerColumns + ") VALUES(?,?,?,?,?,?,?)"},
      {&upsert_head_,
       "INSERT INTO ledger_head(one, entry_id, hash) VALUES(1, ?1, ?2) "
       "ON CONFLICT(one) DO UPDATE SET entry_id = ?1, hash = ?2"},
      {&set_booking_entry_, "UPDATE bookings SET ledger_entry_id = ? WHERE order_id = ?"},
      {&set_progress_,
       "INSERT INTO unbooked_progress(instrument_id, evaluated_until_unix_ms) VALUES(?1, ?2) "
       "ON CONFLICT(instrument_id) DO UPDATE SET evaluated_until_unix_ms = ?2"},
      {&clear_dirty_, "DELETE FROM billing_dirty WHERE instrument_id = ? AND version = ?"},
      {&latest_entry_, std::string("SELECT ") + kLedgerColumns +
                           " FROM ledger WHERE subject = ? ORDER BY entry_id DESC LIMIT 1"},
  };
  for (const Item& item : items) {
    Result<SqliteStatement> s = db_->Prepare(item.sql);
    if (!s.ok()) return s.status();
    item.slot->emplace(std::move(*s));
  }
  return Status::Ok();
}

Status SqliteBilling::MarkDirty(const std::string& instrument_id, int64_t from_unix_ms,
                                int64_t to_unix_ms) {
  SqliteStatement& s = *mark_dirty_;
  s.Reset();
  s.Bind(1, instrument_id).Bind(2, from_unix_ms).Bind(3, std::max(to_unix_ms, from_unix_ms + 1));
  return s.Run().WithContext("changed range of '" + instrument_id + "'");
}

Status SqliteBilling::RecordBatchFacts(int64_t dev_key, const DeviceBatch& batch) {
  std::optional<std::pair<int64_t, int64_t>> changed;
  const auto widen = [&](int64_t from, int64_t to) {
    if (to <= from) return;
    changed = changed.has_value()
                  ? std::make_pair(std::min(changed->first, from), std::max(changed->second, to))
                  : std::make_pair(from, to);
  };
  for (const Interval& iv : batch.intervals) {
    SqliteStatement& s = *old_interval_;
    s.Reset();
    s.Bind(1, dev_key)
        .Bind(2, std::string_view(IntervalKindName(iv.kind)))
        .Bind(3, static_cast<int64_t>(iv.start_seq));
    Result<bool> row = s.Step();
    if (!row.ok()) return row.status();
    const int64_t start = iv.start_wall_unix_ms;
    const int64_t end = iv.end_wall_unix_ms();
    if (!*row) {
      s.Reset();
      widen(start, end);
      continue;
    }
    const int64_t old_start = s.Int(1);
    const int64_t old_end = old_start + s.Int(2);
    const bool same =
        (s.IsNull(0) ? 0 : s.Int(0)) == (iv.kind == IntervalKind::kState ? int64_t{iv.state} : 0) &&
        old_start == start && s.Text(3) == FlagsToString(iv.flags);
    s.Reset();
    if (same) {
      // The usual case, a run's open interval extended by a heartbeat: only the new part.
      widen(std::min(old_end, end), std::max(old_end, end));
    } else {
      widen(std::min(old_start, start), std::max(old_end, end));
    }
  }

  if (batch.newly_signed.has_value()) {
    // The batch's events are inserted already, so this reads them too.
    SqliteStatement& s = *wall_span_;
    s.Reset();
    s.Bind(1, dev_key)
        .Bind(2, static_cast<int64_t>(batch.newly_signed->first))
        .Bind(3, static_cast<int64_t>(batch.newly_signed->last));
    Result<bool> row = s.Step();
    if (!row.ok()) return row.status().WithContext("newly signed events");
    if (*row && !s.IsNull(0)) widen(s.Int(0), s.Int(1) + 1);
    s.Reset();
  }

  struct Hour {
    int64_t fresh_samples = 0;
    int64_t fresh_offset_min_ms = 0;
    std::optional<int64_t> first;
    std::optional<int64_t> last;
  };
  std::map<int64_t, Hour> hours;
  for (const EventRow& e : batch.events) {
    if (e.kind == v1::Event::kSessionMark) widen(e.wall_unix_ms, e.wall_unix_ms + 1);
    if (!e.fresh_heartbeat && !e.sources_disagree) continue;
    Hour& h = hours[FloorTo(e.wall_unix_ms, kHourMs)];
    if (e.fresh_heartbeat) {
      const int64_t offset = e.received_unix_ms - e.wall_unix_ms;
      h.fresh_offset_min_ms =
          h.fresh_samples == 0 ? offset : std::min(h.fresh_offset_min_ms, offset);
      ++h.fresh_samples;
    }
    if (e.sources_disagree) {
      h.first = std::min(h.first.value_or(e.wall_unix_ms), e.wall_unix_ms);
      h.last = std::max(h.last.value_or(e.wall_unix_ms), e.wall_unix_ms);
    }
  }
  for (const auto& [hour, h] : hours) {
    SqliteStatement& s = *upsert_hour_;
    s.Reset();
    s.Bind(1, dev_key).Bind(2, hour).Bind(3, h.fresh_samples);
    if (h.fresh_samples > 0) {
      s.Bind(4, h.fresh_offset_min_ms);
    } else {
      s.BindNull(4);
    }
    if (h.first.has_value()) {
      s.Bind(5, *h.first).Bind(6, *h.last);
    } else {
      s.BindNull(5).BindNull(6);
    }
    INSTRUMETER_RETURN_IF_ERROR(s.Run().WithContext("hour facts"));
  }
  if (changed.has_value())
    INSTRUMETER_RETURN_IF_ERROR(MarkDirty(batch.record.device_id, changed->first, changed->second));
  return Status::Ok();
}

Status SqliteBilling::ApplyRuleUpdates(const std::vector<RuleOverridesUpdate>& updates) {
  for (const RuleOverridesUpdate& u : updates) {
    if (u.fields_set == 0) continue;
    Result<SqliteStatement> read = db_->Prepare(std::string("SELECT ") + kRuleColumns +
                                                " FROM billing_rules WHERE instrument_id = ?");
    if (!read.ok()) return read.status();
    read->Bind(1, u.instrument_id);
    Result<bool> row = read->Step();
    if (!row.ok()) return row.status();
    PartialBillingRules rules;
    for (int f = 0; f < kRuleFieldCount; ++f) {
      const auto field = static_cast<RuleField>(f);
      if ((u.fields_set & (1u << f)) != 0) {
        const std::string text = RuleText(field, u.rules);
        if (!text.empty()) INSTRUMETER_RETURN_IF_ERROR(SetRuleFromText(field, text, &rules));
      } else if (*row && !read->IsNull(f)) {
        Status st = SetRuleFromText(field, read->Text(f), &rules);
        if (!st.ok())
          return Status::Corruption("billing rules of '" + u.instrument_id +
                                    "': " + RuleFieldName(field) + ": " + st.message());
      }
    }
    Result<SqliteStatement> write =
        db_->Prepare(std::string("INSERT OR REPLACE INTO billing_rules(instrument_id, ") +
                     kRuleColumns + ") VALUES(?,?,?,?,?,?,?,?)");
    if (!write.ok()) return write.status();
    write->Bind(1, u.instrument_id);
    for (int f = 0; f < kRuleFieldCount; ++f) {
      const auto field = static_cast<RuleField>(f);
      const std::optional<int64_t> value = RuleInteger(field, rules);
      if (value.has_value()) {
        write->Bind(f + 2, *value);
      } else if (field == RuleField::kRounding && rules.rounding.has_value()) {
        write->Bind(f + 2, std::string_view(RoundingName(*rules.rounding)));
      } else {
        write->BindNull(f + 2);
      }
    }
    INSTRUMETER_RETURN_IF_ERROR(
        write->Run().WithContext("billing rules of '" + u.instrument_id + "'"));
  }
  return Status::Ok();
}

Result<std::vector<InstrumentRuleOverrides>> SqliteBilling::ListRuleOverrides() {
  Result<SqliteStatement> s = db_->Prepare(std::string("SELECT ") + kRuleColumns +
                                           ", instrument_id FROM billing_rules ORDER BY "
                                           "instrument_id");
  if (!s.ok()) return s.status();
  std::vector<InstrumentRuleOverrides> out;
  while (true) {
    Result<bool> row = s->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    InstrumentRuleOverrides o;
    o.instrument_id = s->Text(kRuleFieldCount);
    for (int f = 0; f < kRuleFieldCount; ++f) {
      if (s->IsNull(f)) continue;
      Status st = SetRuleFromText(static_cast<RuleField>(f), s->Text(f), &o.rules);
      if (!st.ok())
        return Status::Corruption("billing rules of '" + o.instrument_id + "': " +
                                  RuleFieldName(static_cast<RuleField>(f)) + ": " + st.message());
    }
    if (o.rules != PartialBillingRules{}) out.push_back(std::move(o));
  }
  return out;
}

Result<std::optional<Booking>> SqliteBilling::FindBooking(const std::string& order_id) {
  SqliteStatement& s = *find_booking_;
  s.Reset();
  s.Bind(1, order_id);
  Result<bool> row = s.Step();
  if (!row.ok()) return row.status();
  std::optional<Booking> out;
  if (*row) {
    Result<Booking> b = ReadBooking(s);
    if (!b.ok()) return b.status();
    out = std::move(*b);
  }
  s.Reset();
  return out;
}

Result<PutBookingsOutcome> SqliteBilling::PutBookings(const std::vector<Booking>& bookings,
                                                      int64_t now_unix_ms) {
  Result<SqliteTransaction> tx = SqliteTransaction::Begin(db_);
  if (!tx.ok()) return tx.status();
  PutBookingsOutcome outcome;
  std::map<std::string, size_t> in_set;
  for (size_t i = 0; i < bookings.size(); ++i)
    if (!in_set.emplace(bookings[i].order_id, i).second)
      return Status::InvalidArgument("order '" + bookings[i].order_id + "' appears twice");

  // Within the set: sorted by instrument and start, each must end before the next starts.
  std::vector<size_t> order(bookings.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::tie(bookings[a].instrument_id, bookings[a].start_unix_ms, a) <
           std::tie(bookings[b].instrument_id, bookings[b].start_unix_ms, b);
  });
  for (size_t k = 1; k < order.size(); ++k) {
    const Booking& prev = bookings[order[k - 1]];
    const Booking& cur = bookings[order[k]];
    if (prev.instrument_id == cur.instrument_id && cur.start_unix_ms < prev.end_unix_ms) {
      const size_t later = std::max(order[k - 1], order[k]);
      const size_t earlier = std::min(order[k - 1], order[k]);
      const Booking& other = bookings[earlier];
      outcome.conflict =
          BookingConflict{later, other.order_id, other.start_unix_ms, other.end_unix_ms, earlier};
      return outcome;
    }
  }
  // Against stored bookings that this set does not replace.
  for (size_t i = 0; i < bookings.size(); ++i) {
    const Booking& b = bookings[i];
    SqliteStatement& s = *overlapping_bookings_;
    s.Reset();
    s.Bind(1, b.instrument_id).Bind(2, b.start_unix_ms).Bind(3, b.end_unix_ms);
    while (true) {
      Result<bool> row = s.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      if (in_set.count(s.Text(0)) > 0) continue;
      outcome.conflict = BookingConflict{i, s.Text(0), s.Int(1), s.Int(2), std::nullopt};
      s.Reset();
      return outcome;
    }
    s.Reset();
  }

  Result<SqliteStatement> upsert =
      db_->Prepare(std::string("INSERT OR REPLACE INTO bookings(") + kBookingColumns +
                   ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  if (!upsert.ok()) return upsert.status();
  for (const Booking& b : bookings) {
    Result<std::optional<Booking>> old = FindBooking(b.order_id);
    if (!old.ok()) return old.status();
    Booking row = b;
    row.updated_unix_ms = now_unix_ms;
    if (!old->has_value()) {
      row.revision = 1;
      ++outcome.inserted;
    } else if (SameTerms(**old, b)) {
      ++outcome.unchanged;
      continue;
    } else {
      const Booking& before = **old;
      row.revision = before.revision + 1;
      // Not verified under its new terms: the next pass after it settles amends its entry.
      const auto [from, to] = GraceWindow(before);
      INSTRUMETER_RETURN_IF_ERROR(MarkDirty(before.instrument_id, from, to));
      ++outcome.updated;
    }
    const auto [from, to] = GraceWindow(row);
    INSTRUMETER_RETURN_IF_ERROR(MarkDirty(row.instrument_id, from, to));
    upsert->Reset();
    BindBooking(&*upsert, row);
    upsert->BindNull(24);
    INSTRUMETER_RETURN_IF_ERROR(upsert->Run().WithContext("order '" + b.order_id + "'"));
  }
  if (outcome.inserted + outcome.updated > 0)
    INSTRUMETER_RETURN_IF_ERROR(
        db_->Exec("UPDATE bookings_version SET version = version + 1 WHERE one = 1"));
  INSTRUMETER_RETURN_IF_ERROR(tx->Commit());
  return outcome;
}

Result<int64_t> SqliteBilling::BookingsVersion() {
  Result<std::optional<int64_t>> version =
      db_->QueryInt("SELECT version FROM bookings_version WHERE one = 1");
  if (!version.ok()) return version.status();
  return version->value_or(0);
}

Result<std::vector<Booking>> SqliteBilling::QueryBookings(SqliteStatement* s) {
  std::vector<Booking> out;
  while (true) {
    Result<bool> row = s->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    Result<Booking> b = ReadBooking(*s);
    if (!b.ok()) return b.status();
    out.push_back(std::move(*b));
  }
  return out;
}

Result<std::vector<Booking>> SqliteBilling::ListBookings(const BookingFilter& filter) {
  // One statement per case: "?1 = '' OR instrument_id = ?1" would keep SQLite from searching
  // the index. No booking is longer than kMaxBookingMs, which bounds the index range below.
  const bool one = !filter.instrument_id.empty();
  const std::string where = one ? " WHERE instrument_id = ?1 AND start_unix_ms > ?4 AND "
                                  "start_unix_ms < ?3 AND end_unix_ms > ?2"
                                : " WHERE start_unix_ms < ?3 AND end_unix_ms > ?2";
  // Of every instrument, sorted here: an ORDER BY makes SQLite walk the instrument index over
  // every booking ever made instead of searching bookings_by_end for those not ended yet.
  Result<SqliteStatement> s =
      db_->Prepare(std::string("SELECT ") + kBookingColumns + " FROM bookings" + where +
                   (one ? " ORDER BY start_unix_ms" : ""));
  if (!s.ok()) return s.status();
  s->Bind(2, filter.from_unix_ms).Bind(3, filter.to_unix_ms);
  if (one)
    s->Bind(1, filter.instrument_id)
        .Bind(4, filter.from_unix_ms > INT64_MIN + kMaxBookingMs
                     ? filter.from_unix_ms - kMaxBookingMs
                     : INT64_MIN);
  Result<std::vector<Booking>> out = QueryBookings(&*s);
  if (out.ok() && !one)
    std::sort(out->begin(), out->end(), [](const Booking& a, const Booking& b) {
      return std::tie(a.instrument_id, a.start_unix_ms) <
             std::tie(b.instrument_id, b.start_unix_ms);
    });
  return out;
}

Result<std::vector<Booking>> SqliteBilling::ListUnverifiedBookings(int64_t settled_unix_ms) {
  Result<SqliteStatement> s =
      db_->Prepare(std::string("SELECT ") + kBookingColumns +
                   " FROM bookings WHERE ledger_entry_id IS NULL AND end_unix_ms <= ?1 "
                   "AND end_unix_ms + grace_after_seconds * 1000 <= ?1");
  if (!s.ok()) return s.status();
  s->Bind(1, settled_unix_ms);
  // Sorted here: an ORDER BY makes SQLite walk the instrument index over every booking instead
  // of the small index of unverified ones.
  Result<std::vector<Booking>> out = QueryBookings(&*s);
  if (out.ok())
    std::sort(out->begin(), out->end(), [](const Booking& a, const Booking& b) {
      return std::tie(a.instrument_id, a.start_unix_ms) <
             std::tie(b.instrument_id, b.start_unix_ms);
    });
  return out;
}

Result<std::vector<DirtyRange>> SqliteBilling::ReadDirtyRanges() {
  Result<SqliteStatement> s = db_->Prepare(
      "SELECT instrument_id, from_unix_ms, to_unix_ms, version FROM billing_dirty "
      "ORDER BY instrument_id");
  if (!s.ok()) return s.status();
  std::vector<DirtyRange> out;
  while (true) {
    Result<bool> row = s->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back({s->Text(0), s->Int(1), s->Int(2), s->Int(3)});
  }
  return out;
}

Result<std::vector<HourFacts>> SqliteBilling::ReadHourFacts(const std::string& device_id,
                                                            int64_t from_unix_ms,
                                                            int64_t to_unix_ms) {
  Result<SqliteStatement> s = db_->Prepare(
      "SELECT h.hour_start_unix_ms, h.fresh_samples, h.fresh_offset_min_ms, "
      "h.disagreement_first_wall_ms, h.disagreement_last_wall_ms FROM device_hours h "
      "JOIN devices d ON d.dev_key = h.dev_key WHERE d.device_id = ?1 "
      "AND h.hour_start_unix_ms > ?2 - 3600000 AND h.hour_start_unix_ms < ?3 "
      "ORDER BY h.hour_start_unix_ms");
  if (!s.ok()) return s.status();
  s->Bind(1, device_id).Bind(2, from_unix_ms).Bind(3, to_unix_ms);
  std::vector<HourFacts> out;
  while (true) {
    Result<bool> row = s->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    HourFacts h;
    h.hour_start_unix_ms = s->Int(0);
    h.fresh_samples = s->Int(1);
    if (!s->IsNull(2)) h.fresh_offset_min_ms = s->Int(2);
    if (!s->IsNull(3)) {
      h.disagreement_first_wall_ms = s->Int(3);
      h.disagreement_last_wall_ms = s->Int(4);
    }
    out.push_back(h);
  }
  return out;
}

Result<std::vector<MarkRecord>> SqliteBilling::ReadSessionMarks(const std::string& device_id,
                                                                int64_t from_unix_ms,
                                                                int64_t to_unix_ms) {
  Result<SqliteStatement> s = db_->Prepare(
      "SELECT e.seq, e.wall_unix_ms, e.body FROM events e "
      "JOIN devices d ON d.dev_key = e.dev_key WHERE d.device_id = ?1 AND e.kind = 12 "
      "AND e.wall_unix_ms >= ?2 AND e.wall_unix_ms < ?3 ORDER BY e.wall_unix_ms, e.seq");
  if (!s.ok()) return s.status();
  s->Bind(1, device_id).Bind(2, from_unix_ms).Bind(3, to_unix_ms);
  std::vector<MarkRecord> out;
  while (true) {
    Result<bool> row = s->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    v1::Event event;
    if (!event.ParseFromString(s->Blob(2)) || !event.has_session_mark())
      return Status::Corruption("device '" + device_id + "' seq " + std::to_string(s->Int(0)) +
                                ": stored session mark does not parse");
    const v1::SessionMark& mark = event.session_mark();
    out.push_back({static_cast<uint64_t>(s->Int(0)), s->Int(1), mark.kind(), mark.order_id(),
                   mark.operator_name()});
  }
  return out;
}

Result<std::vector<UnbookedProgress>> SqliteBilling::ReadUnbookedProgress(
    const std::string& instrument_id) {
  Result<SqliteStatement> s = db_->Prepare(
      std::string("SELECT d.device_id, p.evaluated_until_unix_ms, "
                  "(SELECT MIN(i.start_wall_unix_ms) FROM intervals i WHERE i.dev_key = "
                  "d.dev_key) AS first FROM devices d LEFT JOIN unbooked_progress p ON "
                  "p.instrument_id = d.device_id WHERE first IS NOT NULL") +
      (instrument_id.empty() ? "" : " AND d.device_id = ?1") + " ORDER BY d.device_id");
  if (!s.ok()) return s.status();
  if (!instrument_id.empty()) s->Bind(1, instrument_id);
  std::vector<UnbookedProgress> out;
  while (true) {
    Result<bool> row = s->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    UnbookedProgress p;
    p.instrument_id = s->Text(0);
    if (!s->IsNull(1)) p.evaluated_until_unix_ms = s->Int(1);
    p.first_interval_unix_ms = s->Int(2);
    out.push_back(std::move(p));
  }
  return out;
}

Result<std::optional<Instrument>> SqliteBilling::GetInstrument(const std::string& instrument_id) {
  Result<SqliteStatement> s = db_->Prepare(
      "SELECT instrument_id, name, institution, site, city, region, created_unix_ms "
      "FROM instruments WHERE instrument_id = ?");
  if (!s.ok()) return s.status();
  s->Bind(1, instrument_id);
  Result<bool> row = s->Step();
  if (!row.ok()) return row.status();
  std::optional<Instrument> out;
  if (*row)
    out = Instrument{s->Text(0), s->Text(1), s->Text(2), s->Text(3),
                     s->Text(4), s->Text(5), s->Int(6)};
  return out;
}

Status SqliteBilling::InLedgerTransaction(const std::function<Status(LedgerTxn*)>& body) {
  Result<SqliteTransaction> tx = SqliteTransaction::Begin(db_);
  if (!tx.ok()) return tx.status();
  Txn txn(this);
  INSTRUMETER_RETURN_IF_ERROR(body(&txn));
  INSTRUMETER_RETURN_IF_ERROR(txn.Finish());
  return tx->Commit();
}

Result<std::vector<LedgerEntry>> SqliteBilling::ReadLedger(int64_t after_entry_id, int64_t limit) {
  Result<SqliteStatement> s =
      db_->Prepare(std::string("SELECT ") + kLedgerColumns +
                   " FROM ledger WHERE entry_id > ? ORDER BY entry_id LIMIT ?");
  if (!s.ok()) return s.status();
  s->Bind(1, after_entry_id).Bind(2, limit);
  return QueryEntries(&*s);
}

Result<LedgerHead> SqliteBilling::ReadLedgerHead() {
  SqliteStatement& s = *read_head_;
  s.Reset();
  Result<bool> row = s.Step();
  if (!row.ok()) return row.status();
  LedgerHead head{0, kGenesisHash};
  if (*row) head = {s.Int(0), s.Text(1)};
  s.Reset();
  return head;
}

Result<std::vector<LedgerEntry>> SqliteBilling::ReadLatestLedgerEntries(int64_t from_unix_ms,
                                                                        int64_t to_unix_ms) {
  Result<SqliteStatement> s = db_->Prepare(
      "SELECT l.entry_id, l.kind, l.subject, l.subject_time_unix_ms, l.content, l.prev_hash, "
      "l.hash FROM ledger l JOIN (SELECT MAX(entry_id) AS id FROM ledger GROUP BY subject) m "
      "ON l.entry_id = m.id WHERE l.subject_time_unix_ms >= ? AND l.subject_time_unix_ms < ? "
      "ORDER BY l.subject_time_unix_ms, l.subject");
  if (!s.ok()) return s.status();
  s->Bind(1, from_unix_ms).Bind(2, to_unix_ms);
  return QueryEntries(&*s);
}

}  // namespace instrumeter::hub
