#include "hub/instrument_import.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "protocol/topics.h"
#include "text_input.h"

namespace instrumeter::hub {
namespace {

constexpr std::array<std::string_view, 6> kFields = {"instrument_id", "name", "institution",
                                                     "site",          "city", "region"};

std::string* FieldOf(Instrument* in, std::string_view field) {
  if (field == "instrument_id") return &in->instrument_id;
  if (field == "name") return &in->name;
  if (field == "institution") return &in->institution;
  if (field == "site") return &in->site;
  if (field == "city") return &in->city;
  if (field == "region") return &in->region;
  return nullptr;
}

// Sets (or, for "", clears) rule `field` of `update` from a CSV cell or a JSON string.
Status SetRuleCell(RuleField field, const std::string& text, RuleOverridesUpdate* update) {
  update->fields_set |= 1u << static_cast<int>(field);
  if (text.empty()) {
    ClearRule(field, &update->rules);
    return Status::Ok();
  }
  return SetRuleFromText(field, text, &update->rules);
}

// Checks the id of each row and that no id appears twice. `lines[i]` is the line of row i.
Status CheckRows(const std::vector<Instrument>& rows, const std::vector<int>& lines,
                 const std::string& source) {
  std::map<std::string, int> first_line;
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::string& id = rows[i].instrument_id;
    if (id.empty()) return FieldError(source, lines[i], "instrument_id", "missing");
    Status valid = protocol::ValidateDeviceId(id);
    if (!valid.ok()) return FieldError(source, lines[i], "instrument_id", valid.message());
    auto [it, added] = first_line.emplace(id, lines[i]);
    if (!added)
      return FieldError(
          source, lines[i], "instrument_id",
          "duplicate id '" + id + "' (first on line " + std::to_string(it->second) + ")");
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<Instrument>> ParseInstrumentsCsv(std::string_view text,
                                                    const std::string& source,
                                                    std::vector<RuleOverridesUpdate>* rules) {
  Result<std::vector<CsvRecord>> records = SplitCsv(text, source);
  if (!records.ok()) return records.status();
  if (records->empty())
    return Status::InvalidArgument(source + ": empty file; expected the header " +
                                   "instrument_id,name,institution,site,city,region");
  const CsvRecord& header = records->front();
  std::vector<std::string> columns;
  for (const std::string& name : header.fields) {
    if (std::find(kFields.begin(), kFields.end(), name) == kFields.end() &&
        !RuleFieldByName(name).has_value())
      return FieldError(source, header.line, name,
                        "unknown column (expected instrument_id,name,institution,site,city,"
                        "region and optional billing rule columns)");
    if (std::find(columns.begin(), columns.end(), name) != columns.end())
      return FieldError(source, header.line, name, "column appears twice");
    columns.push_back(name);
  }
  for (std::string_view field : kFields)
    if (std::find(columns.begin(), columns.end(), field) == columns.end())
      return FieldError(source, header.line, field, "column missing from the header");

  std::vector<Instrument> rows;
  std::vector<int> lines;
  for (size_t r = 1; r < records->size(); ++r) {
    const CsvRecord& rec = (*records)[r];
    INSTRUMETER_RETURN_IF_ERROR(CheckFieldCount(rec, columns.size(), source));
    Instrument in;
    RuleOverridesUpdate update;
    for (size_t c = 0; c < columns.size(); ++c) {
      if (std::optional<RuleField> rule = RuleFieldByName(columns[c]); rule.has_value()) {
        Status st = SetRuleCell(*rule, rec.fields[c], &update);
        if (!st.ok()) return FieldError(source, rec.line, columns[c], st.message());
      } else {
        *FieldOf(&in, columns[c]) = rec.fields[c];
      }
    }
    update.instrument_id = in.instrument_id;
    if (rules != nullptr) rules->push_back(std::move(update));
    rows.push_back(std::move(in));
    lines.push_back(rec.line);
  }
  INSTRUMETER_RETURN_IF_ERROR(CheckRows(rows, lines, source));
  return rows;
}

Result<std::vector<Instrument>> ParseInstrumentsJson(std::string_view text,
                                                     const std::string& source,
                                                     std::vector<RuleOverridesUpdate>* rules) {
  Result<nlohmann::json> parsed = ParseJsonDocument(text, source);
  if (!parsed.ok()) return parsed.status();
  const nlohmann::json doc = std::move(*parsed);
  if (!doc.is_array())
    return Status::InvalidArgument(source + ":1: expected an array of instrument objects");
  const std::vector<int> element_lines = ElementLines(text);
  std::vector<Instrument> rows;
  std::vector<int> lines;
  for (size_t i = 0; i < doc.size(); ++i) {
    const int line = i < element_lines.size() ? element_lines[i] : 0;
    const nlohmann::json& el = doc[i];
    if (!el.is_object())
      return Status::InvalidArgument(source + ":" + std::to_string(line) + ": element " +
                                     std::to_string(i + 1) + " is not an object");
    Instrument in;
    RuleOverridesUpdate update;
    for (const auto& [key, value] : el.items()) {
      if (std::optional<RuleField> rule = RuleFieldByName(key); rule.has_value()) {
        // null or "" clears the override; integers (and the rounding name) set it.
        std::string cell;
        if (value.is_number_integer()) {
          cell = std::to_string(value.get<int64_t>());
        } else if (value.is_string()) {
          cell = Trim(value.get<std::string>());
        } else if (!value.is_null()) {
          return FieldError(source, line, key, "must be an integer, a string or null");
        }
        Status st = SetRuleCell(*rule, cell, &update);
        if (!st.ok()) return FieldError(source, line, key, st.message());
        continue;
      }
      std::string* field = FieldOf(&in, key);
      if (field == nullptr)
        return FieldError(source, line, key,
                          "unknown field (expected instrument_id, name, institution, site, "
                          "city, region and optional billing rule fields)");
      if (!value.is_string()) return FieldError(source, line, key, "must be a string");
      *field = Trim(value.get<std::string>());
    }
    update.instrument_id = in.instrument_id;
    if (rules != nullptr) rules->push_back(std::move(update));
    rows.push_back(std::move(in));
    lines.push_back(line);
  }
  INSTRUMETER_RETURN_IF_ERROR(CheckRows(rows, lines, source));
  return rows;
}

Result<std::vector<Instrument>> ReadInstrumentsFile(const std::string& path,
                                                    std::vector<RuleOverridesUpdate>* rules) {
  Result<InputFile> file = ReadInputFile(path);
  if (!file.ok()) return file.status();
  return file->format == InputFormat::kCsv ? ParseInstrumentsCsv(file->text, path, rules)
                                           : ParseInstrumentsJson(file->text, path, rules);
}

}  // namespace instrumeter::hub
