// Rendering rows for people (an aligned table) and for spreadsheets (CSV). Private to the CLI.
#pragma once

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

}  // namespace instrumeter::hub
