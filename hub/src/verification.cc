#include "hub/verification.h"

#include <algorithm>
#include <array>
#include <set>

#include "protocol/codec.h"

namespace instrumeter::hub {
namespace {

constexpr int64_t kHourMs = 3'600'000;
constexpr int64_t kPpm = 1'000'000;

Span SpanOf(const Interval& iv) {
  return {iv.start_wall_unix_ms, iv.start_wall_unix_ms + std::max<int64_t>(iv.duration_ms, 0)};
}

Span Clip(const Span& s, const Span& to) {
  return {std::max(s.from_unix_ms, to.from_unix_ms), std::min(s.to_unix_ms, to.to_unix_ms)};
}

int64_t Overlap(const Span& a, const Span& b) { return Clip(a, b).length_ms(); }

// Sorted, disjoint, non-empty spans covering the same time as `spans`.
std::vector<Span> Merge(std::vector<Span> spans) {
  std::erase_if(spans, [](const Span& s) { return s.length_ms() == 0; });
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.from_unix_ms < b.from_unix_ms; });
  std::vector<Span> out;
  for (const Span& s : spans) {
    if (!out.empty() && s.from_unix_ms <= out.back().to_unix_ms) {
      out.back().to_unix_ms = std::max(out.back().to_unix_ms, s.to_unix_ms);
    } else {
      out.push_back(s);
    }
  }
  return out;
}

// The parts of `s` outside `merged` (sorted, disjoint), appended to *out.
void Subtract(const Span& s, const std::vector<Span>& merged, std::vector<Span>* out) {
  int64_t cursor = s.from_unix_ms;
  for (const Span& m : merged) {
    if (m.to_unix_ms <= cursor) continue;
    if (m.from_unix_ms >= s.to_unix_ms) break;
    if (m.from_unix_ms > cursor) out->push_back({cursor, m.from_unix_ms});
    cursor = std::max(cursor, m.to_unix_ms);
  }
  if (cursor < s.to_unix_ms) out->push_back({cursor, s.to_unix_ms});
}

int64_t Total(const std::vector<Span>& spans) {
  int64_t total = 0;
  for (const Span& s : spans) total += s.length_ms();
  return total;
}

// A state the adapters could tell: the record of that time is complete.
bool IsKnown(v1::InstrumentState s) {
  return s == v1::INSTRUMENT_STATE_OFF || protocol::IsPowered(s);
}

}  // namespace

std::vector<Span> AttributionWindows(const std::vector<BookedWindow>& w) {
  std::vector<Span> out(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    int64_t from = w[i].start_unix_ms - w[i].grace_before_ms;
    int64_t to = w[i].end_unix_ms + w[i].grace_after_ms;
    if (i > 0) {
      const BookedWindow& prev = w[i - 1];
      const int64_t mid = prev.end_unix_ms + (w[i].start_unix_ms - prev.end_unix_ms) / 2;
      from = std::max(from, std::min(prev.end_unix_ms + prev.grace_after_ms, mid));
    }
    if (i + 1 < w.size()) {
      const BookedWindow& next = w[i + 1];
      const int64_t mid = w[i].end_unix_ms + (next.start_unix_ms - w[i].end_unix_ms) / 2;
      to = std::min(to, std::max(next.start_unix_ms - next.grace_before_ms, mid));
    }
    out[i] = {from, std::max(from, to)};
  }
  return out;
}

const char* SessionStatusName(SessionStatus status) {
  switch (status) {
    case SessionStatus::kVerified:
      return "VERIFIED";
    case SessionStatus::kPartial:
      return "PARTIAL";
    case SessionStatus::kNoShow:
      return "NO_SHOW";
    case SessionStatus::kDisputed:
      break;
  }
  return "DISPUTED";
}

std::vector<std::string> SessionFlagNames(uint32_t flags) {
  struct Name {
    uint32_t flag;
    const char* name;
  };
  // Names are what the ledger holds: never rename one.
  static constexpr std::array<Name, 9> kNames = {{
      {kSessionOverrun, "overrun"},
      {kSessionUnbookedUse, "unbooked_use"},
      {kSessionGap, "gap"},
      {kSessionClockSkew, "clock_skew"},
      {kSessionCounterMismatch, "counter_mismatch"},
      {kSessionAgentStoppedWhilePowered, "agent_stopped_while_powered"},
      {kSessionSourcesDisagree, "sources_disagree"},
      {kSessionMarkOtherOrder, "session_mark_other_order"},
      {kSessionUnsigned, "unsigned"},
  }};
  std::vector<std::string> out;
  for (const Name& n : kNames)
    if ((flags & n.flag) != 0) out.emplace_back(n.name);
  return out;
}

Span UnprovenPart(const Interval& iv, const Proof& proof) {
  const Span span = SpanOf(iv);
  const Billability& b = proof.billability;
  for (const SeqRange& r : b.unproven)
    if (iv.start_seq <= r.last && r.first <= iv.end_seq) return span;
  if (iv.end_seq <= b.billable_through) return {span.to_unix_ms, span.to_unix_ms};
  if (iv.start_seq >= b.billable_through) return span;
  return {std::clamp(proof.proven_until_unix_ms, span.from_unix_ms, span.to_unix_ms),
          span.to_unix_ms};
}

SessionMeasure MeasureSession(const Booking& booking, const Span& attribution,
                              const std::vector<Span>& others, const Telemetry& telemetry,
                              const VerifyOptions& options) {
  SessionMeasure m;
  m.booked = {booking.start_unix_ms, booking.end_unix_ms};
  m.attribution = attribution;
  m.booked_ms = m.booked.length_ms();
  const Span after_end = {booking.end_unix_ms, attribution.to_unix_ms};
  const std::vector<Span> owned_by_others = Merge(others);

  std::vector<Span> covered;
  for (const Interval& iv : telemetry.intervals) {
    const Span span = SpanOf(iv);
    const bool in_window = Overlap(span, attribution) > 0;
    if (iv.kind == IntervalKind::kGap) {
      if (!in_window) continue;
      if ((iv.flags & kFlagCounterMismatch) != 0) m.flags |= kSessionCounterMismatch;
      auto before = telemetry.state_before_gap.find(iv.start_seq);
      if (before != telemetry.state_before_gap.end() && protocol::IsPowered(before->second))
        m.flags |= kSessionAgentStoppedWhilePowered;
      continue;
    }
    if (IsKnown(iv.state)) covered.push_back(Clip(span, m.booked));
    if (!in_window) continue;
    const int64_t inside = Overlap(span, attribution);
    if (protocol::IsPowered(iv.state)) m.powered_ms += inside;
    if (protocol::IsInUse(iv.state)) {
      m.in_use_ms += inside;
      m.unsigned_in_use_ms += Overlap(UnprovenPart(iv, telemetry.proof), attribution);
      m.overrun_ms += Overlap(span, after_end);
      std::vector<Span> unowned;
      if (span.from_unix_ms < attribution.from_unix_ms)
        Subtract({span.from_unix_ms, attribution.from_unix_ms}, owned_by_others, &unowned);
      if (span.to_unix_ms > attribution.to_unix_ms)
        Subtract({attribution.to_unix_ms, span.to_unix_ms}, owned_by_others, &unowned);
      if (Total(unowned) > 0) m.flags |= kSessionUnbookedUse;
    }
    if ((iv.flags & kFlagCounterMismatch) != 0) m.flags |= kSessionCounterMismatch;
    if ((iv.flags & (kFlagStoppedWithoutAgentStop | kFlagUncleanStop)) != 0)
      m.flags |= kSessionAgentStoppedWhilePowered;
  }
  m.covered_ms = Total(Merge(std::move(covered)));
  m.coverage_ppm = m.booked_ms > 0 ? m.covered_ms * kPpm / m.booked_ms : 0;

  for (const HourFacts& h : telemetry.hours) {
    const Span hour = {h.hour_start_unix_ms, h.hour_start_unix_ms + kHourMs};
    if (h.fresh_samples > 0 && Overlap(hour, attribution) > 0) {
      m.clock_offset_ms = m.clock_offset_ms.has_value()
                              ? std::min(*m.clock_offset_ms, h.fresh_offset_min_ms)
                              : h.fresh_offset_min_ms;
    }
    if (h.disagreement_first_wall_ms.has_value() &&
        *h.disagreement_first_wall_ms < attribution.to_unix_ms &&
        *h.disagreement_last_wall_ms >= attribution.from_unix_ms)
      m.flags |= kSessionSourcesDisagree;
  }
  if (m.clock_offset_ms.has_value() && (*m.clock_offset_ms > options.max_clock_skew_ms ||
                                        *m.clock_offset_ms < -options.max_clock_skew_ms))
    m.flags |= kSessionClockSkew;

  std::set<std::string> others_marked;
  for (const MarkRecord& mark : telemetry.marks) {
    if (mark.wall_unix_ms < m.booked.from_unix_ms || mark.wall_unix_ms >= m.booked.to_unix_ms)
      continue;
    if (mark.order_id == booking.order_id) {
      ++m.own_marks;
    } else {
      others_marked.insert(mark.order_id);
    }
  }
  m.other_order_marks.assign(others_marked.begin(), others_marked.end());
  if (!m.other_order_marks.empty()) m.flags |= kSessionMarkOtherOrder;

  if (m.overrun_ms > booking.rules.allowed_overrun_seconds * 1000) m.flags |= kSessionOverrun;
  if (m.covered_ms < m.booked_ms) m.flags |= kSessionGap;
  if (m.unsigned_in_use_ms > 0) m.flags |= kSessionUnsigned;

  if ((m.flags & kDisputeFlags) != 0) {
    m.status = SessionStatus::kDisputed;
  } else if (m.covered_ms * kPpm < options.coverage_threshold_ppm * m.booked_ms ||
             m.booked_ms == 0) {
    m.status = SessionStatus::kPartial;
  } else if (m.in_use_ms == 0) {
    m.status = SessionStatus::kNoShow;
  } else {
    m.status = SessionStatus::kVerified;
  }
  return m;
}

UnbookedMeasure MeasureUnbooked(const Span& day, const std::vector<Span>& attributions,
                                const std::vector<Interval>& intervals) {
  UnbookedMeasure u;
  u.day = day;
  const std::vector<Span> owned = Merge(attributions);
  std::vector<Span> pieces;
  for (const Interval& iv : intervals) {
    if (iv.kind != IntervalKind::kState || !protocol::IsInUse(iv.state)) continue;
    const Span inside = Clip(SpanOf(iv), day);
    if (inside.length_ms() > 0) Subtract(inside, owned, &pieces);
  }
  // Summed before merging, like session time: if a wall-clock step placed two intervals over
  // each other, both were really in use (each is measured on the monotonic clock), and every
  // interval's in-use time is split exactly between the disjoint attribution windows and this.
  u.in_use_ms = Total(pieces);
  u.stretches = Merge(std::move(pieces));
  return u;
}

}  // namespace instrumeter::hub
