// A compiled regular expression (PCRE2 syntax, byte-wise) for adapters that read text: rules over
// replies and log lines, command-line patterns.
//
// PCRE2 rather than std::regex: libstdc++'s matcher recurses once per input character and crashed
// on a 100 kB log line in our tests; PCRE2 matches iteratively and stops at a match limit, so a
// pathological pattern costs an error, never a hang or a crash. Immutable after Compile; a Regex
// may be searched from several threads at once and is cheap to copy (the code is shared).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace instrumeter::adapters {

class Regex {
 public:
  // InvalidArgument naming the offset of the error in `pattern`.
  static Result<Regex> Compile(const std::string& pattern);

  // True if the pattern matches anywhere in `text` (which may contain NUL bytes). Internal when
  // the match limit is hit (a pattern with catastrophic backtracking).
  Result<bool> Search(std::string_view text) const;

  const std::string& pattern() const { return pattern_; }

 private:
  struct Code;
  Regex(std::shared_ptr<const Code> code, std::string pattern)
      : code_(std::move(code)), pattern_(std::move(pattern)) {}

  std::shared_ptr<const Code> code_;
  std::string pattern_;
};

}  // namespace instrumeter::adapters
