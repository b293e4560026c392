// A streaming JSON writer that appends straight to a string. The instrument list is written with
// it rather than through a nlohmann::json tree: building and dumping a tree of 10,000 instruments
// took about 200 ms, writing them directly takes a few (tests/bench/live_api_bench). Small
// responses keep using nlohmann::json.
//
// Strings are escaped as RFC 8259 asks; bytes that are not valid UTF-8 become U+FFFD, so a bad
// registry name can never make a response unparsable. Not thread-safe; one per response.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace instrumeter::hub {

class JsonWriter {
 public:
  // `reserve_bytes`: the expected size, to grow the buffer once.
  explicit JsonWriter(size_t reserve_bytes = 256) { out_.reserve(reserve_bytes); }

  JsonWriter& BeginObject() { return Open('{'); }
  JsonWriter& EndObject() { return Close('}'); }
  JsonWriter& BeginArray() { return Open('['); }
  JsonWriter& EndArray() { return Close(']'); }

  JsonWriter& Key(std::string_view key) {
    Separate();
    Quoted(key);
    out_.push_back(':');
    after_key_ = true;
    return *this;
  }
  JsonWriter& String(std::string_view value) {
    Separate();
    Quoted(value);
    return *this;
  }
  JsonWriter& Int(int64_t value) { return Number(value); }
  JsonWriter& Uint(uint64_t value) { return Number(value); }
  JsonWriter& Double(double value) { return Number(value); }
  JsonWriter& Bool(bool value) { return Raw(value ? "true" : "false"); }
  JsonWriter& Null() { return Raw("null"); }

  std::string Take() { return std::move(out_); }

 private:
  JsonWriter& Open(char c) {
    Separate();
    out_.push_back(c);
    first_.push_back(true);
    return *this;
  }
  JsonWriter& Close(char c) {
    out_.push_back(c);
    first_.pop_back();
    return *this;
  }
  JsonWriter& Raw(std::string_view text) {
    Separate();
    out_.append(text);
    return *this;
  }
  template <typename T>
  JsonWriter& Number(T value) {
    Separate();
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
    out_.append(buf, ec == std::errc() ? end : buf);
    return *this;
  }
  // A comma before every element but the first of its container; none right after a key.
  void Separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (first_.empty()) return;
    if (!first_.back()) out_.push_back(',');
    first_.back() = false;
  }
  void Quoted(std::string_view s) {
    out_.push_back('"');
    for (size_t i = 0; i < s.size();) {
      // Plain printable ASCII, the common case, is copied a run at a time.
      size_t run = i;
      while (run < s.size() && IsPlain(static_cast<unsigned char>(s[run]))) ++run;
      out_.append(s.data() + i, run - i);
      i = run;
      if (i == s.size()) break;
      const auto c = static_cast<unsigned char>(s[i]);
      if (c >= 0x80) {
        const size_t len = Utf8Length(s, i);
        if (len == 0) {
          out_.append("\\ufffd");
          ++i;
        } else {
          out_.append(s.substr(i, len));
          i += len;
        }
        continue;
      }
      switch (c) {
        case '"':
          out_.append("\\\"");
          break;
        case '\\':
          out_.append("\\\\");
          break;
        case '\n':
          out_.append("\\n");
          break;
        case '\r':
          out_.append("\\r");
          break;
        case '\t':
          out_.append("\\t");
          break;
        default:
          if (c < 0x20) {
            static const char kHex[] = "0123456789abcdef";
            out_.append("\\u00");
            out_.push_back(kHex[c >> 4]);
            out_.push_back(kHex[c & 0xF]);
          } else {
            out_.push_back(static_cast<char>(c));
          }
      }
      ++i;
    }
    out_.push_back('"');
  }
  static bool IsPlain(unsigned char c) { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\'; }
  // The length of the well-formed UTF-8 sequence at s[i] (a lead byte >= 0x80), or 0.
  static size_t Utf8Length(std::string_view s, size_t i) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t cp;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2;
      cp = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3;
      cp = b0 & 0x0F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4;
      cp = b0 & 0x07;
    } else {
      return 0;
    }
    if (i + len > s.size()) return 0;
    for (size_t k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (b & 0x3F);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8.
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    return len;
  }

  std::string out_;
  std::vector<bool> first_;
  bool after_key_ = false;
};

}  // namespace instrumeter::hub
