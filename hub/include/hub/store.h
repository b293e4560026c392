// Store: where the hub keeps the instrument registry, every event it acknowledged, the derived
// intervals and each device's resumable state. The ingest core and the CLI talk only to this
// interface; SQLite (sqlite_store.h) is one implementation, a PostgreSQL store another later.
//
// Threading: a Store is used from one thread at a time (the ingest thread, or a CLI command).
// Several Stores (processes) may share one database: writers serialise on the database's lock.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "hub/billing_records.h"
#include "hub/derivation.h"
#include "telemetry.pb.h"

namespace instrumeter::hub {

// One registered instrument. Its id is also its agent's device id (protocol/README.md).
struct Instrument {
  std::string instrument_id;
  std::string name;
  std::string institution;
  std::string site;
  std::string city;
  std::string region;
  int64_t created_unix_ms = 0;  // set by the store when first registered
  friend bool operator==(const Instrument&, const Instrument&) = default;
};

// What the hub knows about a device right now (the live view): persisted in the device row in
// the same transaction as the events that changed it.
struct LiveState {
  // The state in force; UNSPECIFIED while no run is open (nobody observes the instrument).
  v1::InstrumentState state = v1::INSTRUMENT_STATE_UNSPECIFIED;
  int64_t state_since_wall_ms = 0;  // agent wall time of the point that began `state`
  // From DeviceStatus messages; nullopt until the first one.
  std::optional<bool> online;
  int64_t status_since_unix_ms = 0;
  int64_t last_seen_unix_ms = 0;  // hub receive time of the device's last accepted envelope
  // From the device's latest heartbeat / observation point (by sequence).
  std::string agent_version;
  uint64_t outbox_depth = 0;
  uint64_t counters_seq = 0;  // the observation point the counters below come from
  uint64_t powered_ms = 0;
  uint64_t in_use_ms = 0;
  friend bool operator==(const LiveState&, const LiveState&) = default;
};

// Where a device's signed chain stands (protocol/README.md, "Signing"; docs/security.md).
struct ChainState {
  std::string link;             // link at contiguous_seq (32 bytes); empty while nothing is stored
  uint64_t signed_through = 0;  // the highest S whose verified signature matched the hub's link_S
  // 0 while the chain is intact; else the first sequence no verified signature vouches for: the
  // device signed another history than the hub stored. Open until an operator resets it.
  uint64_t broken_from = 0;
  // The device's latest verified signed head (S <= contiguous_seq): where a reset re-anchors.
  // `signature` is the device's serialised v1::Signature over it: with the events' exact bytes
  // from sequence 1 and the device's public key, anyone can re-check the record without trusting
  // the hub. It matches the hub's chain while the chain is intact, and proves the break otherwise.
  uint64_t head_seq = 0;
  std::string head;
  std::string signature;
  int64_t reset_unix_ms = 0;  // the operator's chain reset request last applied
  friend bool operator==(const ChainState&, const ChainState&) = default;
};

// A device row: the ingest cursor, derivation, live state and chain, in one record so that one
// write keeps them consistent with each other.
struct DeviceRecord {
  std::string device_id;
  uint64_t contiguous_seq = 0;  // every sequence up to this one is stored
  uint64_t events_stored = 0;
  DerivationState derivation;
  LiveState live;
  ChainState chain;
  friend bool operator==(const DeviceRecord&, const DeviceRecord&) = default;
};

// Inclusive run of stored sequences.
struct SeqRange {
  uint64_t first = 0;
  uint64_t last = 0;
  friend bool operator==(const SeqRange&, const SeqRange&) = default;
};

// A device as loaded at start-up: its record plus the sequences stored above its contiguous
// prefix (events that arrived before a gap was filled), rebuilt from the events themselves.
struct LoadedDevice {
  DeviceRecord record;
  std::vector<SeqRange> stored_above;  // ascending, disjoint, all above contiguous_seq + 1
};

// One stored event: its exact bytes plus the columns reports and later issues query.
struct EventRow {
  uint64_t seq = 0;
  int kind = 0;  // the Event body's protobuf field number (10 state_change .. 13 agent_stop):
                 // fixed by the wire contract, so stable on disk
  std::optional<v1::InstrumentState> state;  // state_change, heartbeat, agent_stop
  std::string boot_id;
  int64_t monotonic_ms = 0;
  int64_t wall_unix_ms = 0;
  std::optional<uint64_t> powered_ms;  // observation points only
  std::optional<uint64_t> in_use_ms;
  std::string body;  // the exact bytes received
  int64_t received_unix_ms = 0;
  // For verification (billing_records.h, HourFacts); not stored as columns of the event.
  // A heartbeat sent with nothing else waiting in the agent's outbox (outbox_depth <= 1) was
  // received fresh: received_unix_ms - wall_unix_ms estimates the agent's clock offset.
  bool fresh_heartbeat = false;
  // A Heartbeat with `disagreement` or a StateChange with `sources_disagreed`.
  bool sources_disagree = false;

  std::string link;  // its chain link; empty until every lower sequence is stored
};

// Fills the columns of an EventRow from a decoded event and its exact bytes.
EventRow MakeEventRow(const v1::Event& event, std::string body, int64_t received_unix_ms);

// An interval with the device it belongs to, for reports.
struct DeviceInterval {
  std::string device_id;
  Interval interval;
};

// Total duration of one device's intervals of one kind and state.
struct DurationSum {
  std::string device_id;
  IntervalKind kind = IntervalKind::kState;
  v1::InstrumentState state = v1::INSTRUMENT_STATE_UNSPECIFIED;
  int64_t duration_ms = 0;
};

// Everything one ingest batch changes for one device.
struct DeviceBatch {
  DeviceRecord record;              // the device row after the batch
  std::vector<EventRow> events;     // new events, none stored before
  std::vector<Interval> intervals;  // inserted or updated, identified by (kind, start_seq)
  // Chain links of events stored earlier (above a gap, or re-anchored by a chain reset).
  std::vector<std::pair<uint64_t, std::string>> link_updates;
  // Sequences a chain reset left unproven (the stretch of a broken chain), to record.
  std::optional<SeqRange> unproven;
  // When the batch moved signed_through: from the last event signed before (or the first event)
  // to the last signed now. The time between their wall times became billable, so billing
  // measures it again even when no telemetry of that time arrived (a late signature).
  std::optional<SeqRange> newly_signed;
};

// One enrolled Ed25519 public key of a device (`instrumeter-hub devices enroll`). A device has at
// most one active (unrevoked) key; revoked keys stay, so that old signatures remain checkable.
struct DeviceKey {
  int64_t key_id = 0;  // set by the store
  std::string device_id;
  std::string public_key;   // 32 raw bytes
  std::string cert_serial;  // hex serial of the TLS client certificate issued with it
  int64_t enrolled_unix_ms = 0;
  std::optional<int64_t> revoked_unix_ms;
  // The device's signed_through when the key was revoked: while it has no active key, nothing
  // above it is billable, whatever the hub verified after the revocation.
  uint64_t revoked_signed_through = 0;
  // `devices chain-reset` asks the running hub to re-anchor a broken chain (docs/security.md).
  int64_t chain_reset_requested_unix_ms = 0;
  friend bool operator==(const DeviceKey&, const DeviceKey&) = default;
};

// What of a device's telemetry may be billed (docs/hub.md, "Billable"): an interval is billable
// iff end_seq <= billable_through and [start_seq, end_seq] overlaps no `unproven` range.
struct Billability {
  std::string device_id;
  uint64_t contiguous_seq = 0;
  uint64_t signed_through = 0;
  // signed_through, capped below an open chain break and, while the device's key is revoked
  // without a replacement, at its signed_through when it was revoked.
  uint64_t billable_through = 0;
  bool enrolled = false;           // it has, or had, a key; false: development mode, never billable
  bool revoked = false;            // it had a key and has no active one
  uint64_t chain_broken_from = 0;  // 0: intact
  std::vector<SeqRange> unproven;  // stretches of resolved chain breaks, ascending
};

// The billing rule above.
bool IsBillable(const Billability& billability, const Interval& interval);

// A bearer token of the HTTP API (`instrumeter-hub tokens add`): the token itself is shown once
// and never stored, only its SHA-256.
struct ApiToken {
  std::string name;
  std::string sha256;  // 32 raw bytes
  int64_t created_unix_ms = 0;
  std::optional<int64_t> revoked_unix_ms;
};

// A customer's share link to one remote booking's live view (`/live/<token>`; docs/security.md,
// "Share links"): like an API token, only the SHA-256 of the token is kept. An order has at most
// one active link; issuing a new one revokes the old.
struct ShareLink {
  std::string sha256;  // 32 raw bytes
  std::string order_id;
  int64_t created_unix_ms = 0;
  std::optional<int64_t> revoked_unix_ms;
};

// What the store's files take on disk, and what their filesystem still has for them: the
// store grows with every event (docs/hub.md, "Disk"), so ops watch both (GET /metrics).
struct StoreSpace {
  uint64_t used_bytes = 0;       // the database and its write-ahead log
  uint64_t available_bytes = 0;  // to this process, on the database's filesystem
};

// Archiving settled events (docs/hub.md, "Archive"): a device's events below its signed head
// that are old enough move, in runs, from one row each into compressed blocks (event_block.h).
// ReadEvents reads both, so no caller sees the difference.
struct ArchiveOptions {
  int64_t received_before_unix_ms = 0;  // only events received before this are archived
  // Per call: one write transaction, which holds the write lock that ingest commits wait for
  // (docs/performance.md, "The archive").
  uint64_t max_events = 1'000;
  uint64_t max_events_per_block = 1'000;
};

struct ArchiveProgress {
  uint64_t events = 0;       // moved into blocks
  uint64_t blocks = 0;       // written
  uint64_t block_bytes = 0;  // compressed bytes written
  uint64_t body_bytes = 0;   // the exact bytes of the events moved
  bool more = false;         // stopped at max_events with older events still to go: call again
  double write_ms = 0;       // how long the write transaction held the write lock
};

// One ingest batch: committed as one transaction or not at all.
struct Batch {
  std::vector<DeviceBatch> devices;
};

class Store {
 public:
  virtual ~Store() = default;

  // --- registry ---
  // Registers or updates instruments, all in one transaction: all or nothing. An existing id
  // keeps its created_unix_ms; a new one gets `now_unix_ms`.
  virtual Status PutInstruments(const std::vector<Instrument>& instruments,
                                int64_t now_unix_ms) = 0;
  // AlreadyExists if the id is registered.
  virtual Status AddInstrument(const Instrument& instrument, int64_t now_unix_ms) = 0;
  // Sorted by id.
  virtual Result<std::vector<Instrument>> ListInstruments() = 0;
  virtual Result<bool> InstrumentExists(const std::string& instrument_id) = 0;

  // --- ingest ---
  // Every device row with its stored ranges, for the ingestor's start.
  virtual Result<std::vector<LoadedDevice>> LoadDevices() = 0;
  // Stored events of a device with from_seq <= seq <= to_seq, ascending (missing ones absent).
  virtual Result<std::vector<EventRow>> ReadEvents(const std::string& device_id, uint64_t from_seq,
                                                   uint64_t to_seq) = 0;
  // Writes the batch in one durable transaction: on OK everything is on disk; on error nothing
  // is (ResourceExhausted when the disk is full). Inserting an already stored (device, seq) is
  // an error, never an overwrite.
  virtual Status CommitBatch(const Batch& batch) = 0;

  // --- reports ---
  // Intervals whose wall span [start, start + duration) overlaps [from, to), of one device or
  // (device_id empty) all, ordered by device and start. Zero-length intervals are left out.
  virtual Result<std::vector<DeviceInterval>> ReadIntervals(const std::string& device_id,
                                                            int64_t from_wall_unix_ms,
                                                            int64_t to_wall_unix_ms) = 0;
  // All-time interval durations per device, kind and state (summed by the database, so a status
  // report does not read every interval).
  virtual Result<std::vector<DurationSum>> SumDurations() = 0;

  // --- billing (docs/billing.md) ---
  // Registers or updates instruments (as PutInstruments) and applies `rules` to their billing
  // rule overrides, in one transaction: all or nothing.
  virtual Status PutInstrumentsAndRules(const std::vector<Instrument>& instruments,
                                        const std::vector<RuleOverridesUpdate>& rules,
                                        int64_t now_unix_ms) = 0;
  // Instruments with at least one override, by id.
  virtual Result<std::vector<InstrumentRuleOverrides>> ListRuleOverrides() = 0;
  // Inserts new bookings and updates changed ones (by order_id) in one transaction, unless one
  // overlaps another booking on its instrument (stored, or in `bookings`): then nothing is
  // written and the outcome names the conflict. A changed or new booking records a changed
  // range (old and new window with their grace) for verification. Callers check everything else
  // (bookings.h, ImportBookings).
  virtual Result<PutBookingsOutcome> PutBookings(const std::vector<Booking>& bookings,
                                                 int64_t now_unix_ms) = 0;
  virtual Result<std::vector<Booking>> ListBookings(const BookingFilter& filter) = 0;
  // The booking with this order id, if any.
  virtual Result<std::optional<Booking>> GetBooking(const std::string& order_id) = 0;
  // A number that grows with every PutBookings that inserts or changes a booking (from any
  // process): readers that cache bookings compare it to know when to read them again.
  virtual Result<int64_t> BookingsVersion() = 0;
  // Bookings not verified under their current terms whose end + grace_after is at or before
  // `settled_unix_ms`, by instrument and start.
  virtual Result<std::vector<Booking>> ListUnverifiedBookings(int64_t settled_unix_ms) = 0;
  // Changed ranges recorded by CommitBatch (wall span of every interval change and session mark)
  // and PutBookings, one per instrument, by instrument id.
  virtual Result<std::vector<DirtyRange>> ReadDirtyRanges() = 0;
  // A device's hour facts for hours starting in [from - 1 h, to), by hour.
  virtual Result<std::vector<HourFacts>> ReadHourFacts(const std::string& device_id,
                                                       int64_t from_unix_ms,
                                                       int64_t to_unix_ms) = 0;
  // A device's SessionMarks with agent wall time in [from, to), by wall time.
  virtual Result<std::vector<MarkRecord>> ReadSessionMarks(const std::string& device_id,
                                                           int64_t from_unix_ms,
                                                           int64_t to_unix_ms) = 0;
  // The device `instrument_id` (empty: every device) if it has intervals, by id.
  virtual Result<std::vector<UnbookedProgress>> ReadUnbookedProgress(
      const std::string& instrument_id) = 0;
  // Runs `body` in one write transaction (BEGIN IMMEDIATE): commits when it returns OK, rolls
  // back otherwise.
  virtual Status InLedgerTransaction(const std::function<Status(LedgerTxn*)>& body) = 0;
  // The registered instrument `instrument_id`, if any.
  virtual Result<std::optional<Instrument>> GetInstrument(const std::string& instrument_id) = 0;
  // Ledger entries with entry_id > after, ascending, at most `limit`.
  virtual Result<std::vector<LedgerEntry>> ReadLedger(int64_t after_entry_id, int64_t limit) = 0;
  // The head as recorded beside the ledger (entry 0 and the genesis hash when empty).
  virtual Result<LedgerHead> ReadLedgerHead() = 0;
  // The latest entry of every subject whose latest entry's subject time is in [from, to), by
  // subject time and subject.
  virtual Result<std::vector<LedgerEntry>> ReadLatestLedgerEntries(int64_t from_unix_ms,
                                                                   int64_t to_unix_ms) = 0;

  // --- security (docs/security.md) ---
  // Enrols a key; AlreadyExists while the device has an active one. Sets key->key_id.
  virtual Status AddDeviceKey(DeviceKey* key) = 0;
  // Every key, active and revoked, by device id then key id.
  virtual Result<std::vector<DeviceKey>> ListDeviceKeys() = 0;
  // A number that grows with every change to the keys (enrolment, revocation, chain reset
  // request; from any process): the running hub reads the keys again only when it moved.
  virtual Result<int64_t> DeviceKeysVersion() = 0;
  // Revokes the device's active key, recording its signed_through at this moment, in one
  // transaction. NotFound when it has no active key.
  virtual Status RevokeDeviceKey(const std::string& device_id, int64_t now_unix_ms) = 0;
  // Asks the running hub to re-anchor the device's broken chain. NotFound without an active key.
  virtual Status RequestChainReset(const std::string& device_id, int64_t now_unix_ms) = 0;
  // One row per device that sent telemetry, by device id: the device `device_id`, or every
  // device when it is empty.
  virtual Result<std::vector<Billability>> ReadBillability(const std::string& device_id) = 0;
  // API tokens. AlreadyExists for a name in use (revoked ones included).
  virtual Status AddApiToken(const ApiToken& token) = 0;
  virtual Result<std::vector<ApiToken>> ListApiTokens() = 0;  // by name
  // NotFound when no active token has that name.
  virtual Status RevokeApiToken(const std::string& name, int64_t now_unix_ms) = 0;
  // The name of the active token with this SHA-256, if any.
  virtual Result<std::optional<std::string>> FindApiToken(const std::string& sha256) = 0;
  // Whether any token (active or revoked) was ever added.
  virtual Result<bool> HasApiTokens() = 0;
  // Adds `link` (created_unix_ms set, revoked unset) for its order in one transaction. While the
  // order has an active link: with `replace_active` that one is revoked at `created_unix_ms`,
  // otherwise nothing is written and the result is false. True when `link` was added.
  virtual Result<bool> AddShareLink(const ShareLink& link, bool replace_active) = 0;
  // The link with this SHA-256 (active or revoked), if any.
  virtual Result<std::optional<ShareLink>> FindShareLink(const std::string& sha256) = 0;
  // Revokes the order's active link at `now_unix_ms`; false when it had none.
  virtual Result<bool> RevokeShareLink(const std::string& order_id, int64_t now_unix_ms) = 0;

  // --- disk ---
  virtual Result<StoreSpace> Space() = 0;
  // Devices with at least a whole block of events below their signed head, not archived yet,
  // received before the time in `options`, by id. Read-only: a pass asks every device, and
  // holds the write lock only for those with work.
  virtual Result<std::vector<std::string>> ListArchiveCandidates(const ArchiveOptions& options) = 0;
  // Archives the device's events in sequence order, up to the first that is too young, has no
  // chain link yet or is at or above its signed head. Session marks stay rows (billing looks them
  // up by wall time), and cut the blocks, as a chain reset does; a run that only the limits above
  // end waits until it fills a whole block. The blocks are built from a snapshot, without the
  // write lock, and each is decoded and compared with its rows; then one write transaction
  // compares the rows still stored with those, writes the blocks and deletes the rows.
  // NotFound for an unknown device.
  virtual Result<ArchiveProgress> ArchiveEvents(const std::string& device_id,
                                                const ArchiveOptions& options) = 0;
};

}  // namespace instrumeter::hub
