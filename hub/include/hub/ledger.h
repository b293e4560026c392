// The hash-chained ledger that billing pays from (DESIGN rule 6; format in docs/billing.md,
// "Ledger"). Entries are only ever appended: a result that changes is corrected by an amendment
// naming the entry it amends. Each entry's `content` is canonical JSON (sorted keys, no
// whitespace, integers only, UTF-8) and
//   hash = SHA-256(prev_hash || content)   (hex digests; prev_hash of entry 1 is 64 zeros)
// so a changed, deleted, inserted or reordered row breaks the chain at a named entry.
//
// Functions here build entries and read the ledger through a Store; the writes happen in
// Store::InLedgerTransaction (billing_driver.h). Thread: whatever thread owns the Store.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "hub/billing_records.h"
#include "hub/store.h"
#include "hub/verification.h"

namespace instrumeter::hub {

inline constexpr char kGenesisHash[] =
    "0000000000000000000000000000000000000000000000000000000000000000";
// The `format_version` every entry carries; a change of the content format gets a new number.
inline constexpr int64_t kLedgerFormatVersion = 1;

// Lowercase hex SHA-256 (OpenSSL EVP).
std::string Sha256Hex(std::string_view bytes);
// SHA-256 over the previous entry's hash (64 hex characters) followed by the content bytes.
std::string ChainHash(std::string_view prev_hash, std::string_view content);

// Subjects: what an entry is about. Every entry about one subject after the first is an
// amendment of the one before it.
std::string SessionSubject(const std::string& order_id);  // "session/<order_id>"
// "unbooked/<instrument_id>/<YYYY-MM-DD>" (the local day of the [billing] UTC offset).
std::string UnbookedSubject(const std::string& instrument_id, const std::string& day);

// The `result` object of a session entry: the booking's terms, the instrument's owner and place,
// the measure, the status and flags, and the money. Canonical JSON.
std::string SessionResultJson(const Booking& booking, const Instrument& instrument,
                              const SessionMeasure& measure, const Charges& charges);
// The `result` object of an unbooked-use entry. `day` is "YYYY-MM-DD".
std::string UnbookedResultJson(const Instrument& instrument, const std::string& day,
                               const UnbookedMeasure& measure);

// A new entry that follows `head`: kind "session" or "unbooked" when `amends` is null, else an
// "amendment" of `amends` (the subject's latest entry), with the changes of its money and hours
// as `delta`. `subject_kind` is "session" or "unbooked"; `result_json` must be canonical JSON
// with integers only, as SessionResultJson and UnbookedResultJson write it.
Result<LedgerEntry> MakeLedgerEntry(const LedgerHead& head, const std::string& subject_kind,
                                    const std::string& subject, int64_t subject_time_unix_ms,
                                    int64_t recorded_unix_ms, const std::string& result_json,
                                    const LedgerEntry* amends);

// The `result` object of an entry, as canonical JSON (to compare with a fresh result).
Result<std::string> ResultJsonOf(const LedgerEntry& entry);

// --- checking the chain ---

struct LedgerBreak {
  int64_t entry_id = 0;  // the first entry that does not check out
  std::string reason;
};

struct LedgerCheck {
  int64_t entries = 0;  // entries read
  LedgerHead last;      // the last entry read (the head if the chain is intact)
  std::optional<LedgerBreak> broken;
};

// An entry a consumer has seen (from the feed or an export), to check the ledger against.
struct LedgerAnchor {
  int64_t entry_id = 0;
  std::string hash;
};
// "ENTRY_ID:HASH".
Result<LedgerAnchor> ParseLedgerAnchor(std::string_view text);

// Walks the whole ledger in entry order and checks, for every entry: ids are 1, 2, 3, ...;
// prev_hash is the previous entry's hash; hash = ChainHash(prev_hash, content); content is
// canonical JSON whose entry_id, kind, subject and subject_time_unix_ms equal the row's; a
// session or unbooked entry is the first about its subject and an amendment amends the subject's
// latest entry. Then the recorded head must be the last entry (a deleted tail shows here), and
// each anchor must be in the chain with its hash. OK with `broken` set when the ledger is
// tampered with; an error only when it cannot be read.
Result<LedgerCheck> VerifyLedger(Store* store, const std::vector<LedgerAnchor>& anchors = {});

// --- the billing feed ---

inline constexpr int64_t kMaxFeedLimit = 1000;

struct FeedPage {
  std::vector<LedgerEntry> entries;  // in entry order
  std::string next_cursor;           // pass as `after` to read on; equals `after` when empty
  bool more = false;                 // entries exist after this page
};

// Entries after `after` (a cursor from a previous page; empty: from the start), at most `limit`
// (1..kMaxFeedLimit). The ledger only grows, so reading again from a cursor returns the same
// entries, plus any appended since: a consumer that stores its cursor after it billed a page
// never bills an entry twice. The cursor is the decimal entry id of the page's last entry.
Result<FeedPage> ReadBillingFeed(Store* store, std::string_view after, int64_t limit);
// {"entries":[{"entry_id":..,"kind":..,"subject":..,"subject_time_unix_ms":..,"content":"..",
// "prev_hash":..,"hash":..}],"next_cursor":"..","more":bool}; `content` is the exact string the
// hash covers.
std::string FeedPageJson(const FeedPage& page);

}  // namespace instrumeter::hub
