#include "hub/http.h"

#include <nlohmann/json.hpp>
#include <set>

#include "text_output.h"

namespace instrumeter::hub {
namespace {

std::vector<std::string> SplitPath(const std::string& path) {
  std::vector<std::string> segments;
  size_t start = 1;  // paths start with '/'
  while (start <= path.size()) {
    const size_t slash = path.find('/', start);
    const size_t end = slash == std::string::npos ? path.size() : slash;
    segments.push_back(path.substr(start, end - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  if (segments.size() == 1 && segments[0].empty()) segments.clear();  // "/"
  return segments;
}

bool IsParam(const std::string& segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string HttpRequest::Header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

void Router::Add(std::string method, const std::string& pattern, HttpHandler handler) {
  routes_.push_back({std::move(method), SplitPath(pattern), std::move(handler)});
}

bool Router::Match(const Route& route, const std::vector<std::string>& segments,
                   std::map<std::string, std::string>* params) {
  if (route.segments.size() != segments.size()) return false;
  std::map<std::string, std::string> found;
  for (size_t i = 0; i < segments.size(); ++i) {
    const std::string& want = route.segments[i];
    if (IsParam(want)) {
      if (segments[i].empty()) return false;
      found[want.substr(1, want.size() - 2)] = segments[i];
    } else if (want != segments[i]) {
      return false;
    }
  }
  if (params != nullptr) *params = std::move(found);
  return true;
}

HttpResponse Router::Dispatch(HttpRequest request) const {
  if (authorizer_) {
    std::optional<HttpResponse> refused = authorizer_(request);
    if (refused.has_value()) return *refused;
  }
  const std::string method = request.method == "HEAD" ? "GET" : request.method;
  const std::vector<std::string> segments = SplitPath(request.path);
  std::set<std::string> allowed;
  for (const Route& route : routes_) {
    if (route.method != method) {
      if (Match(route, segments, nullptr)) allowed.insert(route.method);
      continue;
    }
    if (!Match(route, segments, &request.path_params)) continue;
    return route.handler(request);
  }
  if (allowed.empty()) return JsonError(404, "no such resource: " + request.path);
  std::string allow;
  for (const std::string& m : allowed) allow += (allow.empty() ? "" : ", ") + m;
  if (allowed.count("GET") > 0) allow += ", HEAD";
  HttpResponse response = JsonError(405, "method " + request.method + " is not allowed on " +
                                             request.path + " (allowed: " + allow + ")");
  response.headers.emplace_back("Allow", allow);
  return response;
}

HttpResponse JsonResponse(int status, const nlohmann::json& body) {
  return JsonTextResponse(status, JsonText(body));
}

HttpResponse JsonTextResponse(int status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

HttpResponse JsonError(int status, const std::string& message) {
  return JsonResponse(status, {{"error", {{"status", status}, {"message", message}}}});
}

HttpResponse BadParameter(const std::string& name, const std::string& problem) {
  return JsonError(400, "parameter '" + name + "': " + problem);
}

std::optional<std::string> PercentDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    const int hi = HexValue(text[i + 1]);
    const int lo = HexValue(text[i + 2]);
    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

std::optional<ParsedTarget> ParseTarget(std::string_view target) {
  if (target.empty() || target.front() != '/') return std::nullopt;
  ParsedTarget parsed;
  const size_t question = target.find('?');
  std::optional<std::string> path = PercentDecode(target.substr(0, question));
  if (!path.has_value()) return std::nullopt;
  parsed.path = std::move(*path);
  if (question == std::string_view::npos) return parsed;
  std::string_view query = target.substr(question + 1);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    std::optional<std::string> key = PercentDecode(pair.substr(0, eq));
    std::optional<std::string> value =
        PercentDecode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
    if (!key.has_value() || !value.has_value()) return std::nullopt;
    parsed.query[*key] = std::move(*value);
  }
  return parsed;
}

}  // namespace instrumeter::hub
