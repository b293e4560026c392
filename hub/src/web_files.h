// Serving the dashboard's files from a folder: one file name per request, no subfolders, no
// dot-files, nothing that resolves (through a symlink) outside the folder.
#pragma once

#include <string>

#include "hub/http.h"

namespace instrumeter::hub {

// `name` is one decoded path segment ("" means index.html). 404 JSON when it is not a regular
// file inside `web_root`; the content type follows the extension.
HttpResponse ServeWebFile(const std::string& web_root, const std::string& name);

// "text/html; charset=utf-8" for "index.html", ...; application/octet-stream when unknown.
const char* ContentTypeFor(const std::string& name);

}  // namespace instrumeter::hub
