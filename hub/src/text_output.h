// Rendering rows for people (an aligned table), for spreadsheets (CSV) and for programs (JSON).
// Private to the hub.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace instrumeter::hub {

struct TextTable {
  std::vector<std::string> headers;
  std::vector<std::vector<std::string>> rows;  // each as long as headers
  std::vector<bool> right_aligned;             // per column; numbers read better right-aligned
};

// Columns padded to their widest cell (East Asian wide characters count as two), separated by
// two spaces, header first.
std::string RenderTable(const TextTable& table);
// RFC 4180: header first, fields quoted when they hold a comma, quote or line break.
std::string RenderCsv(const TextTable& table);

// `doc` as JSON text (`indent` < 0: compact). Strings that are not valid UTF-8 (a name read from
// a file, a request's query parameter) get U+FFFD where nlohmann would throw.
std::string JsonText(const nlohmann::json& doc, int indent = -1);

}  // namespace instrumeter::hub
