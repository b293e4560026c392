#include "hub/metrics.h"

#include <cstdio>

namespace instrumeter::hub {
namespace {

class Exposition {
 public:
  void Header(const char* name, const char* type, const char* help) {
    out_ += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  }
  void Sample(const std::string& name, double value, const std::string& labels = "") {
    char number[64];
    std::snprintf(number, sizeof number, "%.17g", value);
    out_ += name + (labels.empty() ? "" : "{" + labels + "}") + " " + number + "\n";
  }
  void Counter(const char* name, const char* help, uint64_t value) {
    Header(name, "counter", help);
    Sample(name, static_cast<double>(value));
  }
  void Gauge(const char* name, const char* help, double value) {
    Header(name, "gauge", help);
    Sample(name, value);
  }
  void Histogram(const char* name, const char* help, const LatencyHistogram& histogram) {
    Header(name, "histogram", help);
    const LatencyHistogram::Snapshot s = histogram.Read();
    const std::string bucket = std::string(name) + "_bucket";
    for (size_t i = 0; i < LatencyHistogram::kBoundsSeconds.size(); ++i) {
      char le[32];
      std::snprintf(le, sizeof le, "le=\"%g\"", LatencyHistogram::kBoundsSeconds[i]);
      Sample(bucket, static_cast<double>(s.cumulative[i]), le);
    }
    Sample(bucket, static_cast<double>(s.count), "le=\"+Inf\"");
    Sample(std::string(name) + "_sum", s.sum_seconds);
    Sample(std::string(name) + "_count", static_cast<double>(s.count));
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace

std::string RenderPrometheus(const HubMetrics& m, const HttpServerStats& http,
                             const LiveGauges& g) {
  Exposition e;
  e.Counter("instrumeter_hub_events_stored_total", "Events committed to the database.",
            m.events_stored);
  e.Header("instrumeter_hub_events_rejected_total", "counter",
           "Messages or events rejected, by reason (conflicting_duplicate and broken_chain are "
           "security alarms; docs/security.md).");
  const std::pair<const char*, uint64_t> rejected[] = {
      {"malformed", m.rejected.malformed},
      {"unknown_device", m.rejected.unknown_device},
      {"topic_mismatch", m.rejected.topic_mismatch},
      {"conflicting_duplicate", m.rejected.conflicting_duplicate},
      {"bad_signature", m.rejected.bad_signature},
      {"broken_chain", m.rejected.broken_chain},
      {"revoked", m.rejected.revoked},
      {"unenrolled", m.rejected.unenrolled}};
  for (const auto& [reason, value] : rejected)
    e.Sample("instrumeter_hub_events_rejected_total", static_cast<double>(value),
             std::string("reason=\"") + reason + "\"");
  e.Counter("instrumeter_hub_signatures_verified_total",
            "Device signatures whose chain head matched the hub's own chain.",
            m.signatures_verified);
  e.Counter(
      "instrumeter_hub_signatures_dropped_total",
      "Verified signatures dropped while waiting for a gap to fill (a later one covers them).",
      m.signatures_dropped);
  e.Counter("instrumeter_hub_clock_skew_heartbeats_total",
            "Fresh heartbeats whose wall clock was off the hub's by more than clock_skew_warn_ms.",
            m.clock_skew_heartbeats);
  e.Counter("instrumeter_hub_duplicates_total",
            "Events received again with the same bytes (dropped, acknowledged again).",
            m.duplicates);
  e.Counter("instrumeter_hub_acks_sent_total", "Acknowledgements published to agents.",
            m.acks_sent);
  e.Counter("instrumeter_hub_resend_requests_total", "ResendRequests published to agents.",
            m.resend_requests);
  e.Counter("instrumeter_hub_batches_total", "Ingest batches committed.", m.batches);
  e.Counter("instrumeter_hub_commit_failures_total", "Failed commit attempts (each retried).",
            m.commit_failures);
  e.Counter("instrumeter_hub_events_deferred_total",
            "New events not taken while commits failed and the batch was full.", m.events_deferred);
  e.Counter("instrumeter_hub_status_messages_total", "DeviceStatus messages applied.",
            m.status_messages);
  e.Counter("instrumeter_hub_status_ignored_total",
            "DeviceStatus messages of devices not in the registry.", m.status_ignored);
  e.Counter("instrumeter_hub_downlink_failures_total", "Acks or resend requests not published.",
            m.downlink_failures);
  e.Counter("instrumeter_hub_events_archived_total",
            "Events moved from rows into compressed blocks (docs/hub.md, Archive).",
            m.events_archived);
  e.Counter("instrumeter_hub_archive_failures_total",
            "Archive steps that failed and were rolled back, to be tried again.",
            m.archive_failures);
  e.Histogram("instrumeter_hub_commit_latency_seconds", "Time to commit one ingest batch.",
              m.commit_latency);
  e.Histogram("instrumeter_hub_inbound_wait_seconds",
              "From the MQTT client receiving a message to the hub taking it.", m.inbound_wait);
  e.Histogram("instrumeter_hub_ack_latency_seconds",
              "From ingesting an envelope to publishing the ack that covers it.", m.ack_latency);
  e.Gauge("instrumeter_hub_mqtt_queued_messages",
          "Messages received from the broker and not yet ingested (backlog).",
          static_cast<double>(m.mqtt_queued_messages));
  e.Gauge("instrumeter_hub_broker_connected", "1 while the hub holds a broker connection.",
          m.broker_connected ? 1 : 0);
  e.Gauge("instrumeter_hub_ingest_healthy", "0 while the last commit attempt failed.",
          g.ingest_healthy ? 1 : 0);
  if (g.store_space.has_value()) {
    e.Gauge("instrumeter_hub_store_bytes", "The database and its write-ahead log, in bytes.",
            static_cast<double>(g.store_space->used_bytes));
    e.Gauge("instrumeter_hub_store_available_bytes",
            "Bytes still available to the hub on the database's filesystem.",
            static_cast<double>(g.store_space->available_bytes));
  }
  e.Gauge("instrumeter_hub_agents_connected", "Agents whose retained status says online.",
          static_cast<double>(g.agents_online));
  e.Gauge("instrumeter_hub_agents_offline", "Agents whose retained status says offline.",
          static_cast<double>(g.agents_offline));
  e.Gauge("instrumeter_hub_agents_outbox_events",
          "Events waiting in the agents' outboxes, as their latest heartbeats report.",
          static_cast<double>(g.agents_outbox_events));
  e.Gauge("instrumeter_hub_instruments", "Instruments known to the hub.",
          static_cast<double>(g.instruments));
  e.Header("instrumeter_hub_instruments_by_state", "gauge",
           "Instruments per live state (NOT_OBSERVED: no agent run open).");
  for (const auto& [state, count] : g.instruments_by_state)
    e.Sample("instrumeter_hub_instruments_by_state", static_cast<double>(count),
             "state=\"" + state + "\"");
  e.Counter("instrumeter_hub_live_changes_dropped_total",
            "Committed changes the http side fell too far behind to take (it reloaded instead).",
            g.feed_dropped);
  e.Header("instrumeter_hub_http_responses_total", "counter", "HTTP responses by status class.");
  for (size_t cls = 2; cls <= 5; ++cls)
    e.Sample("instrumeter_hub_http_responses_total",
             static_cast<double>(http.responses_by_class[cls].load()),
             "code=\"" + std::to_string(cls) + "xx\"");
  e.Gauge("instrumeter_hub_http_connections", "Open HTTP connections.",
          static_cast<double>(http.connections));
  e.Counter("instrumeter_hub_http_connections_refused_total",
            "Connections closed at once because max_connections were open.",
            http.connections_refused);
  e.Gauge("instrumeter_hub_stream_clients", "Open /api/v1/stream clients.",
          static_cast<double>(http.stream_clients));
  e.Counter("instrumeter_hub_stream_clients_dropped_total",
            "Stream clients dropped for falling behind or a stalled write.",
            http.stream_clients_dropped);
  return e.Take();
}

}  // namespace instrumeter::hub
