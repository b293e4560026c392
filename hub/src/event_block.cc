#include "event_block.h"

#include <zlib.h>

#include <string_view>

#include "protocol/chain.h"

namespace instrumeter::hub {
namespace {

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

bool GetVarint(std::string_view* in, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64 && !in->empty(); shift += 7) {
    const auto byte = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    *v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
int64_t UnZigZag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

}  // namespace

Result<EventBlock> EncodeEventBlock(const std::vector<EventRow>& rows) {
  if (rows.empty()) return Status::InvalidArgument("event block: no events");
  std::string raw;
  int64_t previous_received = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const EventRow& e = rows[i];
    if (e.seq != rows.front().seq + i)
      return Status::InvalidArgument("event block: seq " + std::to_string(e.seq) +
                                     " does not follow seq " + std::to_string(rows[i - 1].seq));
    if (e.link.size() != protocol::kChainLinkBytes)
      return Status::InvalidArgument("event block: seq " + std::to_string(e.seq) +
                                     " has no chain link");
    PutVarint(e.body.size(), &raw);
    raw += e.body;
    PutVarint(ZigZag(e.received_unix_ms - previous_received), &raw);
    previous_received = e.received_unix_ms;
  }
  uLongf size = compressBound(raw.size());
  std::string data(size, '\0');
  if (compress2(reinterpret_cast<Bytef*>(data.data()), &size,
                reinterpret_cast<const Bytef*>(raw.data()), raw.size(), Z_BEST_COMPRESSION) != Z_OK)
    return Status::Internal("event block: zlib failed");
  data.resize(size);
  return EventBlock{.first_seq = rows.front().seq,
                    .last_seq = rows.back().seq,
                    .first_link = rows.front().link,
                    .raw_bytes = raw.size(),
                    .data = std::move(data)};
}

Result<std::vector<EventRow>> DecodeEventBlock(const EventBlock& block) {
  const std::string where = "event block from seq " + std::to_string(block.first_seq);
  if (block.last_seq < block.first_seq || block.first_link.size() != protocol::kChainLinkBytes)
    return Status::Corruption(where + ": bad header");
  std::string raw(block.raw_bytes, '\0');
  uLongf size = raw.size();
  if (uncompress(reinterpret_cast<Bytef*>(raw.data()), &size,
                 reinterpret_cast<const Bytef*>(block.data.data()), block.data.size()) != Z_OK ||
      size != raw.size())
    return Status::Corruption(where + ": does not inflate to its " +
                              std::to_string(block.raw_bytes) + " bytes");
  std::vector<EventRow> rows;
  rows.reserve(block.last_seq - block.first_seq + 1);
  std::string_view in = raw;
  int64_t received = 0;
  for (uint64_t seq = block.first_seq; seq <= block.last_seq; ++seq) {
    uint64_t length = 0;
    uint64_t delta = 0;
    if (!GetVarint(&in, &length) || length > in.size())
      return Status::Corruption(where + ": seq " + std::to_string(seq) + " is cut short");
    std::string body(in.substr(0, length));
    in.remove_prefix(length);
    if (!GetVarint(&in, &delta))
      return Status::Corruption(where + ": seq " + std::to_string(seq) + " is cut short");
    received += UnZigZag(delta);
    v1::Event event;
    if (!event.ParseFromString(body) || event.sequence() != seq)
      return Status::Corruption(where + ": seq " + std::to_string(seq) +
                                " does not parse as that event");
    EventRow row = MakeEventRow(event, std::move(body), received);
    // Stored rows do not carry these (store.h): a block's rows are the same rows.
    row.fresh_heartbeat = false;
    row.sources_disagree = false;
    row.link = rows.empty() ? block.first_link : protocol::ChainNext(rows.back().link, row.body);
    rows.push_back(std::move(row));
  }
  if (!in.empty())
    return Status::Corruption(where + ": bytes after seq " + std::to_string(block.last_seq));
  return rows;
}

}  // namespace instrumeter::hub
