#include "hub/ledger.h"

#include <openssl/evp.h>

#include <charconv>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "json_writer.h"
#include "text_output.h"

namespace instrumeter::hub {
namespace {

using nlohmann::json;

constexpr int64_t kVerifyPage = 1000;

// Canonical JSON: std::map objects keep keys sorted; no whitespace; UTF-8 kept as is (invalid
// UTF-8 is refused, never replaced, so the content is exactly what was meant).
Result<std::string> Dump(const json& j) {
  try {
    return j.dump(-1, ' ', false, json::error_handler_t::strict);
  } catch (const json::exception& e) {
    return Status::InvalidArgument(std::string("cannot encode ledger content: ") + e.what());
  }
}

Result<json> Parse(std::string_view text) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    return Status::Corruption(std::string("not valid JSON: ") + e.what());
  }
}

// True when `j` holds no floating-point number anywhere.
bool IntegersOnly(const json& j) {
  if (j.is_number_float()) return false;
  if (j.is_structured())
    for (const json& child : j)
      if (!IntegersOnly(child)) return false;
  return true;
}

int64_t IntAt(const json& j, const json::json_pointer& p) {
  return j.contains(p) && j.at(p).is_number_integer() ? j.at(p).get<int64_t>() : 0;
}

// The amounts and hours an amendment changes, as new - old.
json Delta(const json& before, const json& after, const std::string& subject_kind) {
  static const std::vector<std::pair<const char*, const char*>> kSession = {
      {"billable_seconds", "/charges/billable_seconds"},
      {"amount_fen", "/charges/amount_fen"},
      {"voucher_fen", "/charges/voucher_fen"},
      {"customer_share_fen", "/charges/customer_share_fen"},
      {"customer_pays_now_fen", "/charges/customer_pays_now_fen"},
      {"provider_redeems_fen", "/charges/provider_redeems_fen"},
      {"customer_reimbursed_fen", "/charges/customer_reimbursed_fen"},
      {"in_use_ms", "/telemetry/in_use_ms"},
  };
  static const std::vector<std::pair<const char*, const char*>> kUnbooked = {
      {"in_use_ms", "/in_use_ms"},
  };
  json d = json::object();
  for (const auto& [name, path] : subject_kind == "session" ? kSession : kUnbooked) {
    const json::json_pointer p(path);
    d[name] = IntAt(after, p) - IntAt(before, p);
  }
  if (subject_kind == "session" && before.contains("status"))
    d["previous_status"] = before["status"];
  return d;
}

// [from, to] at the writer's position.
void WriteSpan(JsonWriter& w, const Span& s) {
  w.BeginArray().Int(s.from_unix_ms).Int(s.to_unix_ms).EndArray();
}

void WriteInstrument(JsonWriter* w, const Instrument& in) {
  w->Key("instrument").BeginObject();
  w->Key("city").String(in.city);
  w->Key("institution").String(in.institution);
  w->Key("name").String(in.name);
  w->Key("region").String(in.region);
  w->EndObject();
}

// A JSON string literal, escaped as the canonical form has it.
std::string Quoted(std::string_view text) {
  JsonWriter w(text.size() + 2);
  w.String(text);
  return w.Take();
}

}  // namespace

std::string Sha256Hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  // EVP fails only when out of memory; an empty digest then breaks every comparison, loudly.
  if (ctx == nullptr || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), bytes.data(), bytes.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), digest, &length) != 1)
    return std::string();
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0x0f];
  }
  return out;
}

std::string ChainHash(std::string_view prev_hash, std::string_view content) {
  std::string buffer;
  buffer.reserve(prev_hash.size() + content.size());
  buffer.append(prev_hash).append(content);
  return Sha256Hex(buffer);
}

std::string SessionSubject(const std::string& order_id) { return "session/" + order_id; }

std::string UnbookedSubject(const std::string& instrument_id, const std::string& day) {
  return "unbooked/" + instrument_id + "/" + day;
}

// The result objects are written key by key in sorted (bytewise) order with the streaming
// writer, which escapes exactly as nlohmann::json does: the canonical form without building and
// dumping a tree per session, which cost more than measuring it. Tests compare the output with
// nlohmann's encoding of the same document.
std::string SessionResultJson(const Booking& b, const Instrument& instrument,
                              const SessionMeasure& m, const Charges& c) {
  JsonWriter w(1024);
  w.BeginObject();
  w.Key("booking").BeginObject();
  w.Key("customer").BeginObject();
  w.Key("city").String(b.customer.city);
  w.Key("organisation").String(b.customer.organisation);
  w.Key("region").String(b.customer.region);
  w.EndObject();
  w.Key("end_unix_ms").Int(b.end_unix_ms);
  w.Key("instrument_id").String(b.instrument_id);
  w.Key("operator").String(b.operator_name);
  w.Key("order_id").String(b.order_id);
  w.Key("remote").Bool(b.remote);
  w.Key("start_unix_ms").Int(b.start_unix_ms);
  w.EndObject();
  w.Key("charges").BeginObject();
  w.Key("amount_fen").Int(c.amount_fen);
  w.Key("billable_seconds").Int(c.billable_seconds);
  w.Key("customer_pays_now_fen").Int(c.customer_pays_now_fen);
  w.Key("customer_reimbursed_fen").Int(c.customer_reimbursed_fen);
  w.Key("customer_share_fen").Int(c.customer_share_fen);
  w.Key("provider_redeems_fen").Int(c.provider_redeems_fen);
  w.Key("voucher_fen").Int(c.voucher_fen);
  w.EndObject();
  w.Key("flags").BeginArray();
  for (const std::string& f : SessionFlagNames(m.flags)) w.String(f);
  w.EndArray();
  WriteInstrument(&w, instrument);
  const BillingRules& r = b.rules;
  w.Key("rules").BeginObject();
  w.Key("allowed_overrun_seconds").Int(r.allowed_overrun_seconds);
  w.Key("billing_unit_seconds").Int(r.billing_unit_seconds);
  w.Key("grace_after_seconds").Int(r.grace_after_seconds);
  w.Key("grace_before_seconds").Int(r.grace_before_seconds);
  w.Key("minimum_charge_seconds").Int(r.minimum_charge_seconds);
  w.Key("rate_fen_per_hour").Int(r.rate_fen_per_hour);
  w.Key("rounding").String(RoundingName(r.rounding));
  w.EndObject();
  w.Key("status").String(SessionStatusName(m.status));
  w.Key("telemetry").BeginObject();
  WriteSpan(w.Key("attribution"), m.attribution);
  w.Key("booked_ms").Int(m.booked_ms);
  if (m.clock_offset_ms.has_value()) w.Key("clock_offset_ms").Int(*m.clock_offset_ms);
  w.Key("coverage_ppm").Int(m.coverage_ppm);
  w.Key("covered_ms").Int(m.covered_ms);
  w.Key("in_use_ms").Int(m.in_use_ms);
  w.Key("other_order_marks").BeginArray();
  for (const std::string& order : m.other_order_marks) w.String(order);
  w.EndArray();
  w.Key("overrun_ms").Int(m.overrun_ms);
  w.Key("powered_ms").Int(m.powered_ms);
  w.Key("session_marks").Int(m.own_marks);
  w.Key("unsigned_in_use_ms").Int(m.unsigned_in_use_ms);
  w.EndObject();
  if (b.voucher.has_value()) {
    const Voucher& v = *b.voucher;
    w.Key("voucher").BeginObject();
    w.Key("cap_fen").Int(v.cap_fen);
    w.Key("covered_percent").Int(v.covered_percent);
    w.Key("issuing_region").String(v.issuing_region);
    w.Key("redemption").String(RedemptionName(v.redemption));
    w.Key("voucher_id").String(v.voucher_id);
    w.EndObject();
  }
  w.EndObject();
  return w.Take();
}

std::string UnbookedResultJson(const Instrument& instrument, const std::string& day,
                               const UnbookedMeasure& m) {
  JsonWriter w(256 + 32 * m.stretches.size());
  w.BeginObject();
  w.Key("day").String(day);
  WriteSpan(w.Key("day_span"), m.day);
  w.Key("in_use_ms").Int(m.in_use_ms);
  WriteInstrument(&w, instrument);
  w.Key("instrument_id").String(instrument.instrument_id);
  w.Key("stretches").BeginArray();
  for (const Span& span : m.stretches) WriteSpan(w, span);
  w.EndArray();
  w.EndObject();
  return w.Take();
}

Result<LedgerEntry> MakeLedgerEntry(const LedgerHead& head, const std::string& subject_kind,
                                    const std::string& subject, int64_t subject_time_unix_ms,
                                    int64_t recorded_unix_ms, const std::string& result_json,
                                    const LedgerEntry* amends) {
  LedgerEntry e;
  e.entry_id = head.entry_id + 1;
  e.kind = amends == nullptr ? subject_kind : "amendment";
  e.subject = subject;
  e.subject_time_unix_ms = subject_time_unix_ms;
  e.prev_hash = head.hash;
  // The content is written out key by key, in the sorted order canonical JSON has, around the
  // result (already canonical): parsing and re-encoding a whole result per entry would cost more
  // than everything else an entry takes. Tests compare it with nlohmann's own encoding.
  std::string c = "{";
  if (amends != nullptr) {
    Result<json> before = Parse(amends->content);
    if (!before.ok())
      return before.status().WithContext("entry " + std::to_string(amends->entry_id));
    Result<json> after = Parse(result_json);
    if (!after.ok()) return after.status().WithContext("result of '" + subject + "'");
    Result<std::string> delta =
        Dump(Delta(before->value("result", json::object()), *after, subject_kind));
    if (!delta.ok()) return delta.status();
    c += "\"amends_entry_id\":" + std::to_string(amends->entry_id) + ",\"delta\":" + *delta + ",";
  }
  c += "\"entry_id\":" + std::to_string(e.entry_id) +
       ",\"format_version\":" + std::to_string(kLedgerFormatVersion) +
       ",\"kind\":" + Quoted(e.kind) + ",\"recorded_unix_ms\":" + std::to_string(recorded_unix_ms) +
       ",\"result\":" + result_json + ",\"subject\":" + Quoted(subject) +
       ",\"subject_kind\":" + Quoted(subject_kind) +
       ",\"subject_time_unix_ms\":" + std::to_string(subject_time_unix_ms) + "}";
  e.content = std::move(c);
  e.hash = ChainHash(e.prev_hash, e.content);
  return e;
}

Result<std::string> ResultJsonOf(const LedgerEntry& entry) {
  Result<json> c = Parse(entry.content);
  if (!c.ok()) return c.status().WithContext("entry " + std::to_string(entry.entry_id));
  if (!c->is_object() || !c->contains("result"))
    return Status::Corruption("entry " + std::to_string(entry.entry_id) + " has no result");
  return Dump((*c)["result"]);
}

Result<LedgerAnchor> ParseLedgerAnchor(std::string_view text) {
  const size_t colon = text.find(':');
  LedgerAnchor a;
  const std::string_view id = text.substr(0, colon);
  const auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), a.entry_id);
  if (colon == std::string_view::npos || ec != std::errc() || end != id.data() + id.size() ||
      a.entry_id <= 0 || text.size() - colon - 1 != 64)
    return Status::InvalidArgument("anchor '" + std::string(text) +
                                   "': expected ENTRY_ID:HASH (a positive id, 64 hex digits)");
  a.hash = std::string(text.substr(colon + 1));
  return a;
}

Result<LedgerCheck> VerifyLedger(Store* store, const std::vector<LedgerAnchor>& anchors) {
  LedgerCheck check;
  check.last = {0, kGenesisHash};
  std::map<std::string, int64_t> latest;  // subject -> its latest entry so far
  std::map<int64_t, std::string> wanted;  // anchors: entry id -> hash
  for (const LedgerAnchor& a : anchors) wanted[a.entry_id] = a.hash;
  const auto broken = [&](int64_t id, std::string reason) {
    check.broken = LedgerBreak{id, std::move(reason)};
    return check;
  };
  // From the lowest possible id: a row slipped in below entry 1 must be seen too.
  int64_t after = std::numeric_limits<int64_t>::min();
  while (true) {
    Result<std::vector<LedgerEntry>> page = store->ReadLedger(after, kVerifyPage);
    if (!page.ok()) return page.status().WithContext("reading the ledger");
    for (const LedgerEntry& e : *page) {
      const int64_t expected = check.last.entry_id + 1;
      const std::string id = "entry " + std::to_string(e.entry_id);
      if (e.entry_id > expected)
        return broken(expected, "entry " + std::to_string(expected) +
                                    " is missing: the chain jumps from entry " +
                                    std::to_string(check.last.entry_id) + " to entry " +
                                    std::to_string(e.entry_id));
      if (e.entry_id < expected)
        return broken(e.entry_id,
                      id + " is out of sequence (expected entry " + std::to_string(expected) + ")");
      if (e.prev_hash != check.last.hash)
        return broken(e.entry_id,
                      id + ": prev_hash does not match the hash of entry " +
                          std::to_string(check.last.entry_id) +
                          " (an entry was changed, deleted, inserted or reordered here)");
      if (ChainHash(e.prev_hash, e.content) != e.hash)
        return broken(e.entry_id, id + ": hash does not match its content (content or hash "
                                       "changed)");
      Result<json> c = Parse(e.content);
      Result<std::string> again = c.ok() ? Dump(*c) : Result<std::string>(c.status());
      if (!again.ok() || *again != e.content || !c->is_object() || !IntegersOnly(*c))
        return broken(e.entry_id, id + ": content is not canonical JSON");
      const json& j = *c;
      if (j.value("entry_id", int64_t{-1}) != e.entry_id ||
          j.value("kind", std::string()) != e.kind ||
          j.value("subject", std::string()) != e.subject ||
          j.value("subject_time_unix_ms", int64_t{-1}) != e.subject_time_unix_ms)
        return broken(e.entry_id, id + ": its entry_id, kind, subject or subject_time_unix_ms "
                                       "column differs from its content");
      auto seen = latest.find(e.subject);
      if (e.kind == "amendment") {
        if (seen == latest.end() || j.value("amends_entry_id", int64_t{-1}) != seen->second)
          return broken(e.entry_id, id +
                                        ": an amendment that does not amend the latest entry "
                                        "about '" +
                                        e.subject + "'");
      } else if (seen != latest.end()) {
        return broken(e.entry_id, id + ": a second " + e.kind + " entry about '" + e.subject +
                                      "' (corrections must be amendments)");
      }
      latest[e.subject] = e.entry_id;
      if (auto w = wanted.find(e.entry_id); w != wanted.end()) {
        if (w->second != e.hash)
          return broken(e.entry_id, id + ": hash differs from the anchor " + w->second);
        wanted.erase(w);
      }
      check.last = {e.entry_id, e.hash};
      ++check.entries;
    }
    if (static_cast<int64_t>(page->size()) < kVerifyPage) break;
    after = page->back().entry_id;
  }
  Result<LedgerHead> head = store->ReadLedgerHead();
  if (!head.ok()) return head.status().WithContext("reading the ledger head");
  const int64_t end = check.last.entry_id;
  const std::string chain_end = " but the chain ends at entry " + std::to_string(end);
  if (head->entry_id > end)
    return broken(end + 1, "the recorded head is entry " + std::to_string(head->entry_id) +
                               chain_end + ": entries from " + std::to_string(end + 1) +
                               " on were deleted");
  if (head->entry_id < end)
    return broken(head->entry_id + 1, "the recorded head is entry " +
                                          std::to_string(head->entry_id) + chain_end +
                                          ": entries after the head were added behind its back");
  if (head->hash != check.last.hash)
    return broken(end, "the recorded head's hash differs from entry " + std::to_string(end) + "'s");
  if (!wanted.empty())
    return broken(wanted.begin()->first, "entry " + std::to_string(wanted.begin()->first) +
                                             " of an anchor is not in the ledger (deleted)");
  return check;
}

Result<FeedPage> ReadBillingFeed(Store* store, std::string_view after, int64_t limit) {
  if (limit < 1 || limit > kMaxFeedLimit)
    return Status::InvalidArgument("limit must be 1.." + std::to_string(kMaxFeedLimit));
  int64_t after_id = 0;
  if (!after.empty()) {
    const auto [end, ec] = std::from_chars(after.data(), after.data() + after.size(), after_id);
    if (ec != std::errc() || end != after.data() + after.size() || after_id < 0)
      return Status::InvalidArgument("cursor '" + std::string(after) +
                                     "' is not one this feed gave out");
  }
  Result<std::vector<LedgerEntry>> rows = store->ReadLedger(after_id, limit + 1);
  if (!rows.ok()) return rows.status();
  FeedPage page;
  page.more = static_cast<int64_t>(rows->size()) > limit;
  if (page.more) rows->pop_back();
  page.entries = std::move(*rows);
  page.next_cursor =
      page.entries.empty() ? std::string(after) : std::to_string(page.entries.back().entry_id);
  return page;
}

std::string FeedPageJson(const FeedPage& page) {
  json entries = json::array();
  for (const LedgerEntry& e : page.entries)
    entries.push_back({{"entry_id", e.entry_id},
                       {"kind", e.kind},
                       {"subject", e.subject},
                       {"subject_time_unix_ms", e.subject_time_unix_ms},
                       {"content", e.content},
                       {"prev_hash", e.prev_hash},
                       {"hash", e.hash}});
  json doc = {
      {"entries", std::move(entries)}, {"next_cursor", page.next_cursor}, {"more", page.more}};
  // Content was written as valid UTF-8; `replace` keeps a tampered row from throwing here.
  return JsonText(doc, -1);
}

}  // namespace instrumeter::hub
