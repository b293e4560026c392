#include "hub/instrument_import.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "protocol/topics.h"

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

Status RowError(const std::string& source, int line, std::string_view field,
                const std::string& message) {
  return Status::InvalidArgument(source + ":" + std::to_string(line) + ": field '" +
                                 std::string(field) + "': " + message);
}

std::string Trim(std::string s) {
  const auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

// Checks the id of each row and that no id appears twice. `lines[i]` is the line of row i.
Status CheckRows(const std::vector<Instrument>& rows, const std::vector<int>& lines,
                 const std::string& source) {
  std::map<std::string, int> first_line;
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::string& id = rows[i].instrument_id;
    if (id.empty()) return RowError(source, lines[i], "instrument_id", "missing");
    Status valid = protocol::ValidateDeviceId(id);
    if (!valid.ok()) return RowError(source, lines[i], "instrument_id", valid.message());
    auto [it, added] = first_line.emplace(id, lines[i]);
    if (!added)
      return RowError(
          source, lines[i], "instrument_id",
          "duplicate id '" + id + "' (first on line " + std::to_string(it->second) + ")");
  }
  return Status::Ok();
}

struct CsvRecord {
  int line = 0;
  std::vector<std::string> fields;
};

// RFC 4180: fields separated by commas, optionally quoted with "" as an escaped quote; quoted
// fields may hold commas and line breaks. Lines end in LF or CRLF; blank lines are skipped.
Result<std::vector<CsvRecord>> SplitCsv(std::string_view text, const std::string& source) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // spreadsheet BOM
  std::vector<CsvRecord> records;
  CsvRecord record;
  std::string field;
  bool quoted = false;      // inside quotes
  bool was_quoted = false;  // the current field was quoted (keep its spaces)
  bool record_has_content = false;
  int line = 1;
  record.line = 1;
  const auto end_field = [&] {
    record.fields.push_back(was_quoted ? field : Trim(field));
    field.clear();
    was_quoted = false;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == '"') {
      if (!Trim(field).empty())
        return Status::InvalidArgument(source + ":" + std::to_string(line) +
                                       ": a quote inside an unquoted field");
      field.clear();
      quoted = true;
      was_quoted = true;
      record_has_content = true;
    } else if (c == ',') {
      end_field();
      record_has_content = true;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      if (record_has_content || !Trim(field).empty()) {
        end_field();
        records.push_back(std::move(record));
      }
      record = CsvRecord{};
      field.clear();
      was_quoted = false;
      record_has_content = false;
      record.line = ++line;
    } else {
      field += c;
      if (!std::isspace(static_cast<unsigned char>(c))) record_has_content = true;
    }
  }
  if (quoted)
    return Status::InvalidArgument(source + ":" + std::to_string(record.line) +
                                   ": quoted field is not closed");
  if (record_has_content || !Trim(field).empty()) {
    end_field();
    records.push_back(std::move(record));
  }
  return records;
}

// The line each element of a top-level JSON array starts on (nlohmann keeps no positions).
std::vector<int> ElementLines(std::string_view text) {
  std::vector<int> lines;
  int line = 1;
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  bool expect_element = false;
  for (char c : text) {
    if (c == '\n') ++line;
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (std::isspace(static_cast<unsigned char>(c))) continue;
    if (depth == 1 && expect_element && c != ']') {
      lines.push_back(line);
      expect_element = false;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      ++depth;
      if (depth == 1 && c == '[') expect_element = true;
    } else if (c == ']' || c == '}') {
      --depth;
    } else if (c == ',' && depth == 1) {
      expect_element = true;
    }
  }
  return lines;
}

int LineAt(std::string_view text, size_t byte) {
  byte = std::min(byte, text.size());
  return 1 +
         static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(byte), '\n'));
}

}  // namespace

Result<std::vector<Instrument>> ParseInstrumentsCsv(std::string_view text,
                                                    const std::string& source) {
  Result<std::vector<CsvRecord>> records = SplitCsv(text, source);
  if (!records.ok()) return records.status();
  if (records->empty())
    return Status::InvalidArgument(source + ": empty file; expected the header " +
                                   "instrument_id,name,institution,site,city,region");
  const CsvRecord& header = records->front();
  std::vector<std::string_view> columns;
  for (const std::string& name : header.fields) {
    if (std::find(kFields.begin(), kFields.end(), name) == kFields.end())
      return RowError(source, header.line, name,
                      "unknown column (expected instrument_id,name,institution,site,city,region)");
    if (std::find(columns.begin(), columns.end(), name) != columns.end())
      return RowError(source, header.line, name, "column appears twice");
    columns.push_back(*std::find(kFields.begin(), kFields.end(), name));
  }
  for (std::string_view field : kFields)
    if (std::find(columns.begin(), columns.end(), field) == columns.end())
      return RowError(source, header.line, field, "column missing from the header");

  std::vector<Instrument> rows;
  std::vector<int> lines;
  for (size_t r = 1; r < records->size(); ++r) {
    const CsvRecord& rec = (*records)[r];
    if (rec.fields.size() != columns.size())
      return Status::InvalidArgument(source + ":" + std::to_string(rec.line) + ": " +
                                     std::to_string(rec.fields.size()) + " fields, expected " +
                                     std::to_string(columns.size()));
    Instrument in;
    for (size_t c = 0; c < columns.size(); ++c) *FieldOf(&in, columns[c]) = rec.fields[c];
    rows.push_back(std::move(in));
    lines.push_back(rec.line);
  }
  INSTRUMETER_RETURN_IF_ERROR(CheckRows(rows, lines, source));
  return rows;
}

Result<std::vector<Instrument>> ParseInstrumentsJson(std::string_view text,
                                                     const std::string& source) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    return Status::InvalidArgument(source + ":" + std::to_string(LineAt(text, e.byte)) +
                                   ": not valid JSON");
  }
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
    for (const auto& [key, value] : el.items()) {
      std::string* field = FieldOf(&in, key);
      if (field == nullptr)
        return RowError(source, line, key,
                        "unknown field (expected instrument_id, name, institution, site, city, "
                        "region)");
      if (!value.is_string()) return RowError(source, line, key, "must be a string");
      *field = Trim(value.get<std::string>());
    }
    rows.push_back(std::move(in));
    lines.push_back(line);
  }
  INSTRUMETER_RETURN_IF_ERROR(CheckRows(rows, lines, source));
  return rows;
}

Result<std::vector<Instrument>> ReadInstrumentsFile(const std::string& path) {
  std::string lower = path;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const auto ends_with = [&](std::string_view suffix) {
    return lower.size() >= suffix.size() &&
           lower.compare(lower.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  const bool csv = ends_with(".csv");
  if (!csv && !ends_with(".json"))
    return Status::InvalidArgument(path + ": expected a .csv or .json file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return csv ? ParseInstrumentsCsv(text.str(), path) : ParseInstrumentsJson(text.str(), path);
}

}  // namespace instrumeter::hub
