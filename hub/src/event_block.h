// An event block: a run of one device's consecutive settled events, kept compressed in the store
// instead of one row each (docs/hub.md, "Archive"). A block keeps each event's exact bytes and
// receive time; every other column of EventRow is decoded from the bytes again, and the chain
// links are computed again from the first one (protocol/chain.h), so nothing that proves an hour
// is lost or recomputed from anything but the bytes themselves.
//
// Format (zlib, one stream): for each event, varint(length of its bytes), the bytes, and the
// zigzag varint of its receive time minus the previous event's (the first: minus 0).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "hub/store.h"

namespace instrumeter::hub {

struct EventBlock {
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  std::string first_link;  // the chain link of first_seq
  uint64_t raw_bytes = 0;  // size of the uncompressed stream
  std::string data;        // the zlib stream
};

// Packs `rows`: consecutive sequences, each with its link. InvalidArgument otherwise.
Result<EventBlock> EncodeEventBlock(const std::vector<EventRow>& rows);

// The rows of `block`, as ReadEvents returns stored rows. Corruption (naming the sequence) when
// the stream does not inflate, an event does not parse or carries another sequence than its
// place in the block.
Result<std::vector<EventRow>> DecodeEventBlock(const EventBlock& block);

}  // namespace instrumeter::hub
