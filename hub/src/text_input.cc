#include "text_input.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

namespace instrumeter::hub {

std::string Trim(std::string s) {
  const auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

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

Status CheckFieldCount(const CsvRecord& record, size_t expected, const std::string& source) {
  if (record.fields.size() == expected) return Status::Ok();
  return Status::InvalidArgument(source + ":" + std::to_string(record.line) + ": " +
                                 std::to_string(record.fields.size()) + " fields, expected " +
                                 std::to_string(expected));
}

int LineAt(std::string_view text, size_t byte) {
  byte = std::min(byte, text.size());
  return 1 +
         static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(byte), '\n'));
}

Result<nlohmann::json> ParseJsonDocument(std::string_view text, const std::string& source) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    return Status::InvalidArgument(source + ":" + std::to_string(LineAt(text, e.byte)) +
                                   ": not valid JSON");
  } catch (const nlohmann::json::exception& e) {
    // e.g. "[json.exception.out_of_range.406] number overflow parsing '1E400'": no position.
    std::string why = e.what();
    if (const size_t end = why.find("] "); end != std::string::npos) why.erase(0, end + 2);
    return Status::InvalidArgument(source + ": not valid JSON: " + why);
  }
}

Status FieldError(const std::string& source, int line, std::string_view field,
                  const std::string& message) {
  return Status::InvalidArgument(source + (line > 0 ? ":" + std::to_string(line) : "") +
                                 ": field '" + std::string(field) + "': " + message);
}

Result<InputFile> ReadInputFile(const std::string& path) {
  std::string lower = path;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const auto ends_with = [&](std::string_view suffix) {
    return lower.size() >= suffix.size() &&
           lower.compare(lower.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  InputFile file;
  if (ends_with(".csv")) {
    file.format = InputFormat::kCsv;
  } else if (ends_with(".json")) {
    file.format = InputFormat::kJson;
  } else {
    return Status::InvalidArgument(path + ": expected a .csv or .json file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  file.text = text.str();
  return file;
}

}  // namespace instrumeter::hub
