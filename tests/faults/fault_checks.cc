#include "fault_checks.h"

#include <gtest/gtest.h>

#include <map>

#include "common/sqlite_db.h"
#include "protocol/topics.h"
#include "telemetry.pb.h"

namespace instrumeter::testing {

std::vector<SeenAck> ParseAcks(const std::vector<MqttTap::Message>& messages) {
  std::vector<SeenAck> acks;
  for (const MqttTap::Message& m : messages) {
    auto topic = protocol::ParseTopic(m.topic);
    v1::Downlink downlink;
    if (!topic.ok() || !downlink.ParseFromString(m.payload) || !downlink.has_ack()) continue;
    acks.push_back(
        {topic->device_id, downlink.ack().highest_contiguous_sequence(), m.received_unix_ms});
  }
  return acks;
}

void ExpectEveryAckCommitted(const Stack& s, const std::vector<SeenAck>& acks) {
  auto db = SqliteDb::Open(s.hub_db(), {.read_only = true, .create = false});
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  std::map<std::string, std::map<uint64_t, int64_t>> received;  // device -> seq -> received
  auto rows = (*db)->Prepare(
      "SELECT d.device_id, e.seq, e.received_unix_ms FROM events e JOIN devices d USING(dev_key)");
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  while (true) {
    auto row = rows->Step();
    ASSERT_TRUE(row.ok()) << row.status().ToString();
    if (!*row) break;
    received[rows->Text(0)][static_cast<uint64_t>(rows->Int(1))] = rows->Int(2);
  }
  int violations = 0;
  for (const SeenAck& ack : acks) {
    const auto& stored = received[ack.device_id];
    for (uint64_t seq = 1; seq <= ack.sequence && violations < 10; ++seq) {
      auto it = stored.find(seq);
      if (it == stored.end()) {
        ++violations;
        ADD_FAILURE() << ack.device_id << ": acked up to " << ack.sequence << " but sequence "
                      << seq << " is not in the hub's database";
      } else if (it->second > ack.seen_unix_ms) {
        ++violations;
        ADD_FAILURE() << ack.device_id << ": ack for " << ack.sequence << " seen at "
                      << ack.seen_unix_ms << " but sequence " << seq << " was received at "
                      << it->second << ", after it";
      }
    }
  }
}

size_t CountResendRequests(const std::vector<MqttTap::Message>& messages) {
  size_t count = 0;
  for (const MqttTap::Message& m : messages) {
    v1::Downlink downlink;
    if (downlink.ParseFromString(m.payload) && downlink.has_resend()) ++count;
  }
  return count;
}

}  // namespace instrumeter::testing
