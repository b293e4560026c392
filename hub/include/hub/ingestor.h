// The ingest core: raw uplink messages in, durable events, intervals and live state out, and
// acknowledgements only for what is committed (protocol/README.md, "Delivery"; DESIGN rule 3).
//
// It knows nothing of MQTT: the bridge hands it messages and implements Downlink; tests drive it
// directly with a fake Downlink and FakeClock. It talks to storage only through Store.
//
// Threading: an Ingestor and its Store and Downlink are used from one thread (the ingest
// thread). HubMetrics, healthy() and last_error() may be read from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/backoff.h"
#include "common/clock.h"
#include "common/status.h"
#include "hub/commit_observer.h"
#include "hub/latency_histogram.h"
#include "hub/store.h"
#include "protocol/chain.h"
#include "protocol/codec.h"

namespace instrumeter::hub {

class RateLimitedLog;

struct IngestOptions {
  size_t max_batch_events = 2000;     // commit when this many new events wait
  int64_t max_batch_delay_ms = 20;    // ... or when the oldest waited this long
  int64_t resend_interval_ms = 5000;  // at most one ResendRequest per device per interval
  protocol::EnvelopeLimits limits;    // max_envelope_bytes, max_events (per envelope)
  bool accept_unregistered_devices = false;
  // How often an unknown device id is looked up again in the registry.
  int64_t registry_recheck_ms = 5000;
  // Backoff between attempts when a commit fails (disk full, I/O error).
  int64_t commit_retry_min_ms = 200;
  int64_t commit_retry_max_ms = 10000;
  // Signed telemetry (protocol/README.md, "Signing"; docs/security.md). Refuse devices without an
  // enrolled key? nullopt: yes as soon as any device has a key (a hub without any is in
  // development mode).
  std::optional<bool> require_signatures;
  // How often enrolled keys, revocations and chain reset requests are read again from the store
  // (the CLI changes them while the hub runs).
  int64_t key_reload_ms = 2000;
  // Verified signatures waiting, per device, for the contiguous prefix to reach them; beyond
  // this the lowest are dropped (a later signature covers their events too).
  size_t max_held_signatures = 16;
  // A fresh heartbeat whose wall time differs from the hub's receive time by more than this is
  // counted and logged as clock skew (its events are kept: skew never loses hours).
  int64_t clock_skew_warn_ms = 300'000;
};

// The way back to agents. Implemented by the MQTT bridge; faked in tests. Called on the ingest
// thread, only after the commit that makes the statement true.
class Downlink {
 public:
  virtual ~Downlink() = default;
  // Every sequence up to `highest_contiguous_sequence` of the device is committed.
  virtual Status SendAck(const std::string& device_id, uint64_t highest_contiguous_sequence) = 0;
  // Sequences from..to (inclusive) are missing while later ones are stored.
  virtual Status SendResend(const std::string& device_id, uint64_t from_sequence,
                            uint64_t to_sequence) = 0;
};

// Counters of what the ingest core did; read from any thread (GET /metrics).
struct HubMetrics {
  struct Rejected {
    std::atomic<uint64_t> malformed{0};       // undecodable envelope/status, bad topic
    std::atomic<uint64_t> unknown_device{0};  // envelope from a device not in the registry
    std::atomic<uint64_t> topic_mismatch{0};  // topic device != Envelope.device_id
    // A (device, sequence) already stored, received with other bytes: a security alarm.
    std::atomic<uint64_t> conflicting_duplicate{0};
    // Signed telemetry (docs/security.md). Envelopes refused whole: bad_signature (does not
    // verify with the enrolled key), revoked (the device's key is revoked), unenrolled (no key
    // while signatures are required). broken_chain counts verified signatures over another
    // history than the hub stored (the events are already stored: never billed, alarmed).
    std::atomic<uint64_t> bad_signature{0};
    std::atomic<uint64_t> revoked{0};
    std::atomic<uint64_t> unenrolled{0};
    std::atomic<uint64_t> broken_chain{0};
  };
  Rejected rejected;
  std::atomic<uint64_t> events_stored{0};
  std::atomic<uint64_t> duplicates{0};  // events received again with the same bytes
  std::atomic<uint64_t> acks_sent{0};
  std::atomic<uint64_t> resend_requests{0};
  std::atomic<uint64_t> batches{0};          // committed batches
  std::atomic<uint64_t> commit_failures{0};  // failed commit attempts (each retried)
  // New events not taken while commits fail and the batch is full: unacknowledged, so the agent
  // sends them again.
  std::atomic<uint64_t> events_deferred{0};
  std::atomic<uint64_t> status_messages{0};  // DeviceStatus applied
  std::atomic<uint64_t> status_ignored{0};   // DeviceStatus of unknown devices
  // Signatures whose head matched the hub's own chain (signed_through advanced or confirmed).
  std::atomic<uint64_t> signatures_verified{0};
  std::atomic<uint64_t> signatures_dropped{0};     // held too long (max_held_signatures)
  std::atomic<uint64_t> clock_skew_heartbeats{0};  // fresh heartbeats beyond clock_skew_warn_ms
  std::atomic<uint64_t> downlink_failures{0};
  // Set by the archive worker (archive_worker.h): events moved into blocks, and device steps or
  // passes that failed (rolled back whole; tried again at the next pass).
  std::atomic<uint64_t> events_archived{0};
  std::atomic<uint64_t> archive_failures{0};
  // Set by the MQTT bridge: messages received from the broker and not yet ingested, and how long
  // each waited between the MQTT client receiving it and the hub taking it.
  std::atomic<uint64_t> mqtt_queued_messages{0};
  LatencyHistogram inbound_wait;
  std::atomic<uint64_t> commit_latency_us_last{0};
  std::atomic<uint64_t> commit_latency_us_max{0};
  std::atomic<uint64_t> commit_latency_us_total{0};
  LatencyHistogram commit_latency;  // CommitBatch, per committed batch
  // From the ingest of an envelope to its device's ack being handed to the downlink: the batch
  // delay plus the commit. Observed once per ack, for the oldest envelope it answers.
  LatencyHistogram ack_latency;
  // Set by the MQTT bridge: the hub holds a broker connection now.
  std::atomic<bool> broker_connected{false};
};

class Ingestor {
 public:
  // Loads every device's cursor and state from `store`. The store, downlink, clock, metrics and
  // observer are borrowed and must outlive the Ingestor. `observer` (optional) hears of every
  // successful commit, after its acks.
  static Result<std::unique_ptr<Ingestor>> Create(Store* store, Downlink* downlink,
                                                  const Clock* clock, HubMetrics* metrics,
                                                  const IngestOptions& options,
                                                  CommitObserver* observer = nullptr);
  ~Ingestor();
  Ingestor(const Ingestor&) = delete;
  Ingestor& operator=(const Ingestor&) = delete;

  // One message from the broker: an Envelope on .../up or a DeviceStatus on .../status; other
  // topics are counted as malformed. `received_unix_ms` is the hub's wall clock at receipt.
  // Commits at once when the batch is full.
  void OnMessage(std::string_view topic, std::string_view payload, int64_t received_unix_ms);

  // Commits the pending batch when it is due (its delay passed, or a failed commit's retry time
  // came). Call whenever MsUntilDue() says.
  void Poll();
  // Milliseconds until Poll() has work: 0 if now, -1 if nothing is pending.
  int64_t MsUntilDue() const;
  // Commits whatever is pending now, ignoring delays and backoff (shutdown). OK if nothing was
  // pending or the commit succeeded; on failure nothing is acknowledged.
  Status Flush();

  // False while the last commit attempt failed; last_error() says why. Any thread.
  bool healthy() const { return healthy_.load(); }
  Status last_error() const;

  // Devices whose latest DeviceStatus said online (ingest thread).
  size_t DevicesOnline() const;
  // Whether devices without an enrolled key are refused now (ingest thread).
  bool SignaturesRequired() const;

 private:
  struct PendingEvent {
    v1::Event event;
    std::string bytes;
    int64_t received_unix_ms = 0;
  };
  struct PendingDevice {
    std::map<uint64_t, PendingEvent> events;  // new, not yet committed
    // Verified on arrival, chain not yet compared, by through_sequence.
    std::map<uint64_t, v1::Signature> signatures;
    std::optional<int64_t> chain_reset_unix_ms;  // an operator's reset request to apply
    std::optional<bool> online;                  // from a DeviceStatus
    int64_t status_since_unix_ms = 0;
    bool ack_owed = false;               // an envelope arrived: answer with the contiguous sequence
    int64_t first_envelope_mono_ms = 0;  // when the oldest envelope owed an ack was ingested
    int64_t last_seen_unix_ms = 0;
  };
  struct DeviceState {
    DeviceRecord record;                 // as committed
    std::map<uint64_t, uint64_t> above;  // stored ranges above contiguous: first -> last
    std::optional<int64_t> last_resend_mono_ms;
    // Verified signatures above contiguous, by through_sequence (memory only).
    std::map<uint64_t, v1::Signature> held;
  };
  // What a commit attempt would make of one device; adopted only after the commit, when its
  // counts and alarms are reported too.
  struct Prepared {
    std::string device_id;
    DeviceState state;
    bool ack_owed = false;
    uint64_t signatures_verified = 0;
    uint64_t signatures_dropped = 0;
    uint64_t chains_broken = 0;
    std::vector<std::string> alarms;  // logged at error level, never rate-limited
    std::vector<std::string> notes;   // logged at info level
    int64_t first_envelope_mono_ms = 0;
    std::optional<AgentHealth> health;  // newest heartbeat among the new events (observer only)
  };
  // A device's enrolment as the store last said.
  struct KeyEntry {
    std::optional<protocol::VerifyingKey> active;  // nullopt: every key of it is revoked
    int64_t active_key_id = 0;
    int64_t chain_reset_requested_unix_ms = 0;
  };
  Ingestor(Store* store, Downlink* downlink, const Clock* clock, HubMetrics* metrics,
           const IngestOptions& options, CommitObserver* observer);

  void HandleUp(const std::string& device_id, std::string_view payload, int64_t received_unix_ms);
  void HandleStatus(const std::string& device_id, std::string_view payload,
                    int64_t received_unix_ms);
  bool Registered(const std::string& device_id);
  // Compares re-sent events with the stored ones (`indexes` into `events`).
  void CheckStoredDuplicates(const std::string& device_id,
                             const protocol::DecodedEnvelope& envelope,
                             const std::vector<size_t>& indexes);
  void RaiseConflict(const std::string& device_id, const std::vector<uint64_t>& seqs);
  Status PrepareDevice(const std::string& device_id, const PendingDevice& pending,
                       Prepared* prepared, DeviceBatch* batch);
  // Checks what an envelope says about its device's enrolment and signature. Returns false (and
  // counts and logs why) when it must be refused whole; else `signature` gets its verified
  // signature, if it carries one.
  bool CheckSignature(const std::string& device_id, const protocol::DecodedEnvelope& envelope,
                      std::optional<v1::Signature>* signature);
  // A signed envelope that follows a proven prefix must hash to the head it signs; refuses one
  // that does not (FailedPrecondition), before any of its events can be stored.
  Status CheckEnvelopeChain(const std::string& device_id, const protocol::DecodedEnvelope& env);
  // Re-reads the enrolled keys: revocations, new keys and chain reset requests take effect.
  Status ReloadKeys();
  // The operator's reset of a broken chain: re-anchors it at the device's latest verified head.
  Status ResetChain(const std::string& device_id, int64_t requested_unix_ms, DeviceState* state,
                    Prepared* prepared, DeviceBatch* batch);
  // Compares the signatures waiting for `state` with its chain (links known up to contiguous:
  // `new_links` for this batch, the store for older ones).
  Status CheckHeldSignatures(const std::string& device_id, uint64_t old_contiguous,
                             const std::string& old_link,
                             const std::map<uint64_t, std::string>& new_links, DeviceState* state,
                             Prepared* prepared);
  // Fills in chain links missing after the store's migration to signed telemetry (at start).
  Status BackfillLinks();
  Status Commit();
  void SendDownlinks(const std::vector<Prepared>& prepared);
  void NotifyObserver(std::vector<Prepared>* prepared, const Batch& batch);
  bool HasStored(const DeviceState& state, uint64_t seq) const;

  Store* store_;
  Downlink* downlink_;
  const Clock* clock_;
  HubMetrics* metrics_;
  IngestOptions options_;
  CommitObserver* observer_;
  std::unique_ptr<RateLimitedLog> log_;

  std::unordered_map<std::string, DeviceState> devices_;
  std::map<std::string, PendingDevice> pending_;
  size_t pending_events_ = 0;
  int64_t batch_started_mono_ms_ = 0;

  // Commit retry after a failure.
  Backoff retry_backoff_;
  std::optional<int64_t> retry_at_mono_ms_;

  // Enrolled keys by device id, read again when a check every key_reload_ms finds them changed.
  std::unordered_map<std::string, KeyEntry> keys_;
  std::optional<int64_t> keys_loaded_mono_ms_;
  std::optional<int64_t> keys_version_;  // Store::DeviceKeysVersion when keys_ was read

  // Registry cache: known ids stay known; a miss is looked up again after registry_recheck_ms.
  std::set<std::string> registered_;
  std::unordered_map<std::string, int64_t> unregistered_checked_mono_ms_;

  std::atomic<bool> healthy_{true};
  mutable std::mutex error_mu_;
  Status last_error_;  // guarded by error_mu_

#ifdef INSTRUMETER_FAULT_HOOKS
  // INSTRUMETER_FAULT=crash_after_commit:N: _exit(137) right after the Nth commit, before acks.
  uint64_t crash_after_commit_ = 0;
  uint64_t commits_ = 0;
#endif
};

}  // namespace instrumeter::hub
