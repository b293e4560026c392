#include "web_files.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

namespace instrumeter::hub {
namespace {

constexpr std::uintmax_t kMaxFileBytes = 8 << 20;

bool EndsWith(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

const char* ContentTypeFor(const std::string& name) {
  static const std::pair<const char*, const char*> kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".json", "application/json"},
      {".txt", "text/plain; charset=utf-8"},
  };
  for (const auto& [ext, type] : kTypes)
    if (EndsWith(name, ext)) return type;
  return "application/octet-stream";
}

HttpResponse ServeWebFile(const std::string& web_root, const std::string& name) {
  namespace fs = std::filesystem;
  const std::string file = name.empty() ? "index.html" : name;
  // One plain segment: no separators, no "..", no dot-files (.git, editor swap files).
  if (file.find('/') != std::string::npos || file.find('\\') != std::string::npos ||
      file.front() == '.')
    return JsonError(404, "no such file: /" + name);
  std::error_code ec;
  const fs::path root = fs::canonical(web_root, ec);
  if (ec) return JsonError(404, "no such file: /" + name + " (web_root is not readable)");
  const fs::path path = fs::canonical(root / file, ec);
  if (ec || path.parent_path() != root || !fs::is_regular_file(path, ec))
    return JsonError(404, "no such file: /" + name);
  if (fs::file_size(path, ec) > kMaxFileBytes || ec)
    return JsonError(404, "no such file: /" + name);
  std::ifstream in(path, std::ios::binary);
  std::ostringstream body;
  body << in.rdbuf();
  if (!in) return JsonError(500, "cannot read /" + name);
  HttpResponse response;
  response.content_type = ContentTypeFor(file);
  response.body = body.str();
  // Revalidated on every load: a wall screen picks up a new dashboard after a restart.
  response.headers.emplace_back("Cache-Control", "no-cache");
  response.headers.emplace_back("X-Content-Type-Options", "nosniff");
  return response;
}

}  // namespace instrumeter::hub
