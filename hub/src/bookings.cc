#include "hub/bookings.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/clock.h"
#include "protocol/topics.h"
#include "text_input.h"
#include "text_output.h"

namespace instrumeter::hub {
namespace {

using nlohmann::json;

constexpr size_t kMaxIdBytes = 128;
constexpr size_t kMaxTextBytes = 256;

enum class Kind { kText, kWord, kTime, kBool, kInteger };

// The booking fields: their CSV column, their JSON place (object, key) and how they are read.
enum Field {
  kOrderId,
  kInstrumentId,
  kCustomerOrganisation,
  kCustomerCity,
  kCustomerRegion,
  kStart,
  kEnd,
  kRemote,
  kOperator,
  kRate,
  kVoucherId,
  kVoucherIssuingRegion,
  kVoucherCoveredPercent,
  kVoucherCapFen,
  kVoucherRedemption,
  kFieldCount,
};

struct FieldSpec {
  const char* csv;
  const char* object;  // "" (top level), "customer" or "voucher"
  const char* key;
  Kind kind;
  bool required;
};

constexpr std::array<FieldSpec, kFieldCount> kSpecs = {{
    {"order_id", "", "order_id", Kind::kWord, true},
    {"instrument_id", "", "instrument_id", Kind::kWord, true},
    {"customer_organisation", "customer", "organisation", Kind::kText, true},
    {"customer_city", "customer", "city", Kind::kText, true},
    {"customer_region", "customer", "region", Kind::kText, true},
    {"start", "", "start", Kind::kTime, true},
    {"end", "", "end", Kind::kTime, true},
    {"remote", "", "remote", Kind::kBool, true},
    {"operator", "", "operator", Kind::kText, false},
    {"rate_fen_per_hour", "", "rate_fen_per_hour", Kind::kInteger, false},
    {"voucher_id", "voucher", "voucher_id", Kind::kWord, false},
    {"voucher_issuing_region", "voucher", "issuing_region", Kind::kText, false},
    {"voucher_covered_percent", "voucher", "covered_percent", Kind::kInteger, false},
    {"voucher_cap_fen", "voucher", "cap_fen", Kind::kInteger, false},
    {"voucher_redemption", "voucher", "redemption", Kind::kWord, false},
}};

// Each field's value as text; nullopt (or "") when not given.
using Cells = std::array<std::optional<std::string>, kFieldCount>;

std::string NameOf(Field f, bool json) {
  const FieldSpec& s = kSpecs[f];
  if (!json || *s.object == '\0') return json ? s.key : s.csv;
  return std::string(s.object) + "." + s.key;
}

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = 1;
    uint32_t cp = c;
    if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else if (c >= 0xE0) {
      len = c <= 0xEF ? 3 : 0;
      cp = c & 0x0F;
    } else if (c >= 0xC2) {
      len = c <= 0xDF ? 2 : 0;
      cp = c & 0x1F;
    } else if (c >= 0x80) {
      len = 0;
    }
    if (len == 0 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
      return false;
    i += len;
  }
  return true;
}

bool HasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7F;
  });
}

bool HasSpace(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; });
}

int DaysInMonth(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : kDays[month - 1];
}

// ISO 8601 with a time and an offset; ParseUtc also takes a bare date and rolls 02-31 over into
// March, which a booking must not.
Status ParseTime(const std::string& text, int64_t* unix_ms) {
  const Status bad = Status::InvalidArgument(
      "'" + text + "' is not an ISO 8601 time with an offset (e.g. 2026-11-29T09:00:00+08:00)");
  if (text.size() <= 10 || !ParseUtc(text, unix_ms)) return bad;
  const int year = std::atoi(text.substr(0, 4).c_str());
  const int month = std::atoi(text.substr(5, 2).c_str());
  const int day = std::atoi(text.substr(8, 2).c_str());
  if (day > DaysInMonth(year, month)) return bad;
  return Status::Ok();
}

Status ParseInteger(const std::string& text, int64_t* value) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *value);
  if (ec != std::errc() || end != text.data() + text.size())
    return Status::InvalidArgument("'" + text + "' is not an integer");
  return Status::Ok();
}

Status ParseBool(std::string text, bool* value) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (text == "true" || text == "yes" || text == "1") {
    *value = true;
  } else if (text == "false" || text == "no" || text == "0") {
    *value = false;
  } else {
    return Status::InvalidArgument("'" + text + "' is not true or false");
  }
  return Status::Ok();
}

// Checks one row's cells and builds its BookingInput.
Result<BookingInput> BuildInput(const Cells& cells, const std::string& source, int line,
                                bool json) {
  const auto error = [&](Field f, const std::string& message) {
    return FieldError(source, line, NameOf(f, json), message);
  };
  const auto given = [&](Field f) { return cells[f].has_value() && !cells[f]->empty(); };
  for (int i = 0; i < kFieldCount; ++i) {
    const Field f = static_cast<Field>(i);
    const FieldSpec& spec = kSpecs[f];
    if (!given(f)) {
      if (spec.required) return error(f, "missing");
      continue;
    }
    const std::string& v = *cells[f];
    if (!IsValidUtf8(v)) return error(f, "not valid UTF-8");
    if (spec.kind == Kind::kText && (v.size() > kMaxTextBytes || HasControl(v)))
      return error(f, "must be one line of at most " + std::to_string(kMaxTextBytes) + " bytes");
    if (spec.kind == Kind::kWord && (v.size() > kMaxIdBytes || HasControl(v) || HasSpace(v)))
      return error(f, "must be one word of at most " + std::to_string(kMaxIdBytes) + " bytes");
  }

  BookingInput in;
  in.source = source;
  in.line = line;
  in.json = json;
  Booking& b = in.booking;
  b.order_id = *cells[kOrderId];
  b.instrument_id = *cells[kInstrumentId];
  if (Status st = protocol::ValidateDeviceId(b.instrument_id); !st.ok())
    return error(kInstrumentId, st.message());
  b.customer = {*cells[kCustomerOrganisation], *cells[kCustomerCity], *cells[kCustomerRegion]};
  if (Status st = ParseTime(*cells[kStart], &b.start_unix_ms); !st.ok())
    return error(kStart, st.message());
  if (Status st = ParseTime(*cells[kEnd], &b.end_unix_ms); !st.ok())
    return error(kEnd, st.message());
  if (b.end_unix_ms <= b.start_unix_ms)
    return error(kEnd, "must be after start (" + FormatUtc(b.start_unix_ms) + ")");
  if (b.end_unix_ms - b.start_unix_ms > kMaxBookingMs)
    return error(kEnd, "a booking may last at most 366 days");
  if (Status st = ParseBool(*cells[kRemote], &b.remote); !st.ok())
    return error(kRemote, st.message());
  if (given(kOperator)) b.operator_name = *cells[kOperator];
  if (given(kRate)) {
    int64_t rate = 0;
    Status st = ParseInteger(*cells[kRate], &rate);
    if (st.ok()) st = CheckRuleValue(RuleField::kRateFenPerHour, rate);
    if (!st.ok()) return error(kRate, st.message());
    in.rate_fen_per_hour = rate;
  }

  const Field voucher_fields[] = {kVoucherIssuingRegion, kVoucherCoveredPercent, kVoucherCapFen,
                                  kVoucherRedemption};
  if (!given(kVoucherId)) {
    for (Field f : voucher_fields)
      if (given(f)) return error(kVoucherId, "missing (" + NameOf(f, json) + " is given)");
    return in;
  }
  for (Field f : voucher_fields)
    if (!given(f)) return error(f, "missing (the booking has a voucher)");
  Voucher v;
  v.voucher_id = *cells[kVoucherId];
  v.issuing_region = *cells[kVoucherIssuingRegion];
  if (Status st = ParseInteger(*cells[kVoucherCoveredPercent], &v.covered_percent); !st.ok())
    return error(kVoucherCoveredPercent, st.message());
  if (v.covered_percent < 0 || v.covered_percent > 100)
    return error(kVoucherCoveredPercent,
                 std::to_string(v.covered_percent) + " is out of range 0..100");
  if (Status st = ParseInteger(*cells[kVoucherCapFen], &v.cap_fen); !st.ok())
    return error(kVoucherCapFen, st.message());
  if (v.cap_fen < 0 || v.cap_fen > kMaxCapFen)
    return error(kVoucherCapFen,
                 std::to_string(v.cap_fen) + " is out of range 0.." + std::to_string(kMaxCapFen));
  if (!ParseRedemption(*cells[kVoucherRedemption], &v.redemption))
    return error(kVoucherRedemption,
                 "'" + *cells[kVoucherRedemption] + "' is not provider or reimburse");
  b.voucher = v;
  return in;
}

// The text of a JSON value for a field of `kind`, or an error naming what was expected.
Result<std::optional<std::string>> JsonCell(const json& value, Kind kind) {
  if (value.is_null()) return std::optional<std::string>();
  switch (kind) {
    case Kind::kBool:
      if (value.is_boolean()) return std::optional<std::string>(value.get<bool>() ? "1" : "0");
      return Status::InvalidArgument("must be true or false");
    case Kind::kInteger:
      if (value.is_number_integer())
        return std::optional<std::string>(std::to_string(value.get<int64_t>()));
      return Status::InvalidArgument("must be an integer");
    case Kind::kText:
    case Kind::kWord:
    case Kind::kTime:
      if (value.is_string()) return std::optional<std::string>(Trim(value.get<std::string>()));
      return Status::InvalidArgument("must be a string");
  }
  return Status::Internal("unknown field kind");
}

// Reads the keys of `object` (the top level, "customer" or "voucher") into `cells`.
Status JsonObjectCells(const json& object, const std::string& name, const std::string& source,
                       int line, Cells* cells) {
  for (const auto& [key, value] : object.items()) {
    int found = -1;
    for (int i = 0; i < kFieldCount; ++i)
      if (name == kSpecs[i].object && key == kSpecs[i].key) found = i;
    const std::string path = name.empty() ? key : name + "." + key;
    if (found < 0) {
      if (name.empty() && (key == "customer" || key == "voucher")) {
        if (value.is_null() && key == "voucher") continue;
        if (!value.is_object()) return FieldError(source, line, key, "must be an object");
        INSTRUMETER_RETURN_IF_ERROR(JsonObjectCells(value, key, source, line, cells));
        continue;
      }
      return FieldError(source, line, path, "unknown field");
    }
    Result<std::optional<std::string>> cell = JsonCell(value, kSpecs[found].kind);
    if (!cell.ok()) return FieldError(source, line, path, cell.status().message());
    (*cells)[found] = *cell;
  }
  return Status::Ok();
}

// The import cells of a stored booking.
Cells CellsOf(const Booking& b) {
  Cells c;
  c[kOrderId] = b.order_id;
  c[kInstrumentId] = b.instrument_id;
  c[kCustomerOrganisation] = b.customer.organisation;
  c[kCustomerCity] = b.customer.city;
  c[kCustomerRegion] = b.customer.region;
  c[kStart] = FormatUtc(b.start_unix_ms);
  c[kEnd] = FormatUtc(b.end_unix_ms);
  c[kRemote] = b.remote ? "true" : "false";
  c[kOperator] = b.operator_name;
  c[kRate] = std::to_string(b.rules.rate_fen_per_hour);
  if (b.voucher.has_value()) {
    c[kVoucherId] = b.voucher->voucher_id;
    c[kVoucherIssuingRegion] = b.voucher->issuing_region;
    c[kVoucherCoveredPercent] = std::to_string(b.voucher->covered_percent);
    c[kVoucherCapFen] = std::to_string(b.voucher->cap_fen);
    c[kVoucherRedemption] = RedemptionName(b.voucher->redemption);
  }
  return c;
}

}  // namespace

bool SameTerms(const Booking& a, const Booking& b) {
  return a.order_id == b.order_id && a.instrument_id == b.instrument_id &&
         a.customer == b.customer && a.start_unix_ms == b.start_unix_ms &&
         a.end_unix_ms == b.end_unix_ms && a.remote == b.remote &&
         a.operator_name == b.operator_name && a.rules == b.rules && a.voucher == b.voucher;
}

Result<std::vector<BookingInput>> ParseBookingsCsv(std::string_view text,
                                                   const std::string& source) {
  Result<std::vector<CsvRecord>> records = SplitCsv(text, source);
  if (!records.ok()) return records.status();
  if (records->empty())
    return Status::InvalidArgument(source + ": empty file; expected a header line");
  const CsvRecord& header = records->front();
  std::vector<Field> columns;
  for (const std::string& name : header.fields) {
    int found = -1;
    for (int i = 0; i < kFieldCount; ++i)
      if (name == kSpecs[i].csv) found = i;
    if (found < 0) return FieldError(source, header.line, name, "unknown column");
    if (std::find(columns.begin(), columns.end(), found) != columns.end())
      return FieldError(source, header.line, name, "column appears twice");
    columns.push_back(static_cast<Field>(found));
  }
  for (int i = 0; i < kFieldCount; ++i)
    if (kSpecs[i].required &&
        std::find(columns.begin(), columns.end(), static_cast<Field>(i)) == columns.end())
      return FieldError(source, header.line, kSpecs[i].csv, "column missing from the header");
  std::vector<BookingInput> rows;
  for (size_t r = 1; r < records->size(); ++r) {
    const CsvRecord& rec = (*records)[r];
    INSTRUMETER_RETURN_IF_ERROR(CheckFieldCount(rec, columns.size(), source));
    Cells cells;
    for (size_t c = 0; c < columns.size(); ++c) cells[columns[c]] = rec.fields[c];
    Result<BookingInput> in = BuildInput(cells, source, rec.line, false);
    if (!in.ok()) return in.status();
    rows.push_back(std::move(*in));
  }
  return rows;
}

Result<std::vector<BookingInput>> ParseBookingsJson(std::string_view text,
                                                    const std::string& source) {
  Result<json> parsed = ParseJsonDocument(text, source);
  if (!parsed.ok()) return parsed.status();
  json doc = std::move(*parsed);
  std::vector<int> lines = ElementLines(text);
  if (doc.is_object()) {
    doc = json::array({std::move(doc)});
    lines = {1};
  }
  if (!doc.is_array())
    return Status::InvalidArgument(source + ":1: expected a booking object or an array of them");
  std::vector<BookingInput> rows;
  for (size_t i = 0; i < doc.size(); ++i) {
    const int line = i < lines.size() ? lines[i] : 0;
    if (!doc[i].is_object())
      return Status::InvalidArgument(source + ":" + std::to_string(line) + ": element " +
                                     std::to_string(i + 1) + " is not an object");
    Cells cells;
    INSTRUMETER_RETURN_IF_ERROR(JsonObjectCells(doc[i], "", source, line, &cells));
    Result<BookingInput> in = BuildInput(cells, source, line, true);
    if (!in.ok()) return in.status();
    rows.push_back(std::move(*in));
  }
  return rows;
}

Result<std::vector<BookingInput>> ReadBookingsFile(const std::string& path) {
  Result<InputFile> file = ReadInputFile(path);
  if (!file.ok()) return file.status();
  return file->format == InputFormat::kCsv ? ParseBookingsCsv(file->text, path)
                                           : ParseBookingsJson(file->text, path);
}

namespace {

// Where another row of the same import is: "on line 7", or "in bookings[3]" for a row that is
// not from a text file (line 0).
std::string RowName(const BookingInput& row) {
  return row.line > 0 ? "on line " + std::to_string(row.line) : "in " + row.source;
}

}  // namespace

Result<ImportReport> ImportBookings(Store* store, const std::vector<BookingInput>& rows,
                                    const PartialBillingRules& defaults, int64_t now_unix_ms) {
  const auto error = [&](const BookingInput& row, Field f, const std::string& message) {
    return FieldError(row.source, row.line, NameOf(f, row.json), message);
  };
  std::map<std::string, const BookingInput*> first;
  for (const BookingInput& row : rows) {
    auto [it, added] = first.emplace(row.booking.order_id, &row);
    if (!added)
      return error(row, kOrderId,
                   "order '" + row.booking.order_id + "' appears twice (first " +
                       RowName(*it->second) + ")");
  }
  Result<std::vector<InstrumentRuleOverrides>> overrides = store->ListRuleOverrides();
  if (!overrides.ok()) return overrides.status();
  std::map<std::string, PartialBillingRules> by_instrument;
  for (const InstrumentRuleOverrides& o : *overrides) by_instrument[o.instrument_id] = o.rules;

  std::set<std::string> registered;
  std::vector<Booking> bookings;
  bookings.reserve(rows.size());
  for (const BookingInput& row : rows) {
    const std::string& instrument = row.booking.instrument_id;
    if (registered.count(instrument) == 0) {
      Result<bool> exists = store->InstrumentExists(instrument);
      if (!exists.ok()) return exists.status();
      if (!*exists)
        return error(row, kInstrumentId, "instrument '" + instrument + "' is not registered");
      registered.insert(instrument);
    }
    PartialBillingRules own;
    own.rate_fen_per_hour = row.rate_fen_per_hour;
    const auto it = by_instrument.find(instrument);
    const PartialBillingRules merged = Overlay(
        own, Overlay(it == by_instrument.end() ? PartialBillingRules{} : it->second, defaults));
    if (!merged.rate_fen_per_hour.has_value())
      return error(
          row, kRate,
          "missing: instrument '" + instrument + "' has no rate and [billing] sets no default");
    Result<BillingRules> rules = Complete(merged);
    if (!rules.ok()) return rules.status().WithContext("billing rules of '" + instrument + "'");
    Booking b = row.booking;
    b.rules = *rules;
    bookings.push_back(std::move(b));
  }

  Result<PutBookingsOutcome> outcome = store->PutBookings(bookings, now_unix_ms);
  if (!outcome.ok()) return outcome.status();
  if (outcome->conflict.has_value()) {
    const BookingConflict& c = *outcome->conflict;
    std::string message = "overlaps order '" + c.other_order_id + "' (" +
                          FormatUtc(c.other_start_unix_ms) + " to " +
                          FormatUtc(c.other_end_unix_ms) + ") on instrument '" +
                          bookings[c.index].instrument_id + "'";
    if (c.other_index.has_value()) message += " " + RowName(rows[*c.other_index]);
    return error(rows[c.index], kStart, message);
  }
  return ImportReport{outcome->inserted, outcome->updated, outcome->unchanged};
}

std::string BookingsCsv(const std::vector<Booking>& bookings) {
  TextTable table;
  for (const FieldSpec& spec : kSpecs) table.headers.emplace_back(spec.csv);
  for (const Booking& b : bookings) {
    const Cells cells = CellsOf(b);
    std::vector<std::string>& row = table.rows.emplace_back();
    for (const std::optional<std::string>& cell : cells) row.push_back(cell.value_or(""));
  }
  return RenderCsv(table);
}

std::string BookingsJson(const std::vector<Booking>& bookings) {
  json list = json::array();
  for (const Booking& b : bookings) {
    const Cells cells = CellsOf(b);
    json row = json::object();
    for (int i = 0; i < kFieldCount; ++i) {
      if (!cells[i].has_value() || cells[i]->empty()) continue;
      const FieldSpec& spec = kSpecs[i];
      json value = *cells[i];
      int64_t number = 0;
      if (spec.kind == Kind::kInteger && ParseInteger(*cells[i], &number).ok()) value = number;
      if (spec.kind == Kind::kBool) value = b.remote;
      if (*spec.object == '\0') {
        row[spec.key] = std::move(value);
      } else {
        row[spec.object][spec.key] = std::move(value);
      }
    }
    list.push_back(std::move(row));
  }
  return JsonText(list, 2) + "\n";
}

}  // namespace instrumeter::hub
