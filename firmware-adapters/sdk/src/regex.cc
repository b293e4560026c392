#include "adapters/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace instrumeter::adapters {
namespace {

// Enough for any sane rule over a line of text; a pattern that needs more backtracking than this
// is a configuration mistake that should show as an error rather than stall the agent.
constexpr uint32_t kMatchLimit = 10'000'000;
// Backtracking memory (KiB): ample for a 64 KiB line, small enough to never exhaust the agent.
constexpr uint32_t kHeapLimitKib = 128 * 1024;

std::string PcreMessage(int code) {
  PCRE2_UCHAR buffer[256];
  if (pcre2_get_error_message(code, buffer, sizeof(buffer)) < 0)
    return "error " + std::to_string(code);
  return reinterpret_cast<const char*>(buffer);
}

}  // namespace

struct Regex::Code {
  ~Code() {
    pcre2_match_context_free(context);
    pcre2_code_free(code);
  }
  pcre2_code* code = nullptr;
  pcre2_match_context* context = nullptr;
};

Result<Regex> Regex::Compile(const std::string& pattern) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  auto code = std::make_shared<Code>();
  code->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), 0,
                             &error, &offset, nullptr);
  if (code->code == nullptr)
    return Status::InvalidArgument("bad regular expression '" + pattern + "' at offset " +
                                   std::to_string(offset) + ": " + PcreMessage(error));
  code->context = pcre2_match_context_create(nullptr);
  if (code->context == nullptr) return Status::ResourceExhausted("out of memory compiling a regex");
  pcre2_set_match_limit(code->context, kMatchLimit);
  pcre2_set_heap_limit(code->context, kHeapLimitKib);
  return Regex(std::move(code), pattern);
}

Result<bool> Regex::Search(std::string_view text) const {
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(
      pcre2_match_data_create_from_pattern(code_->code, nullptr), &pcre2_match_data_free);
  if (data == nullptr) return Status::ResourceExhausted("out of memory matching a regex");
  const int rc = pcre2_match(code_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0,
                             0, data.get(), code_->context);
  if (rc >= 0) return true;
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  return Status::Internal("regular expression '" + pattern_ + "' failed: " + PcreMessage(rc));
}

}  // namespace instrumeter::adapters
