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

// A device row: the ingest cursor, derivation and live state, in one record so that one write
// keeps them consistent with each other.
struct DeviceRecord {
  std::string device_id;
  uint64_t contiguous_seq = 0;  // every sequence up to this one is stored
  uint64_t events_stored = 0;
  DerivationState derivation;
  LiveState live;
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
};

}  // namespace instrumeter::hub
