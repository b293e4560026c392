// Reading tabular input files (CSV and JSON arrays) with line numbers for error messages: shared
// by the instrument and booking imports. Private to the hub.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace instrumeter::hub {

// Without leading and trailing white space.
std::string Trim(std::string s);

struct CsvRecord {
  int line = 0;  // the line the record starts on
  std::vector<std::string> fields;
};

// RFC 4180: fields separated by commas, optionally quoted with "" as an escaped quote; quoted
// fields may hold commas and line breaks. Lines end in LF or CRLF; blank lines are skipped; a
// UTF-8 BOM is ignored; unquoted fields are trimmed. `source` names the file in errors.
Result<std::vector<CsvRecord>> SplitCsv(std::string_view text, const std::string& source);

// InvalidArgument "<source>:<line>: N fields, expected M" unless `record` has `expected` fields.
Status CheckFieldCount(const CsvRecord& record, size_t expected, const std::string& source);

// The line each element of a top-level JSON array starts on (nlohmann keeps no positions).
std::vector<int> ElementLines(std::string_view text);

// The 1-based line of byte offset `byte`.
int LineAt(std::string_view text, size_t byte);

// The JSON document `text`, or InvalidArgument "<source>:<line>: not valid JSON" (a syntax error)
// or "<source>: not valid JSON: <why>" (a number out of range). Never throws.
Result<nlohmann::json> ParseJsonDocument(std::string_view text, const std::string& source);

// InvalidArgument "<source>:<line>: field '<field>': <message>"; without ":<line>" when `line` is
// 0 (a source that is not a text file, such as one element of an HTTP request).
Status FieldError(const std::string& source, int line, std::string_view field,
                  const std::string& message);

enum class InputFormat { kCsv, kJson };
struct InputFile {
  std::string text;
  InputFormat format = InputFormat::kCsv;
};
// Reads a .csv or .json file (by its extension, case-insensitive); anything else is
// InvalidArgument, an unreadable file NotFound.
Result<InputFile> ReadInputFile(const std::string& path);

}  // namespace instrumeter::hub
