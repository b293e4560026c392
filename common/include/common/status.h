// Status and Result<T>: how every instrumeter interface reports failure.
//
// No exceptions cross our own interfaces. An action returns a Status; a function that produces a
// value returns Result<T>, which holds either the value or the Status that explains why not.
// Each layer adds context on the way up (WithContext), so a message reads like
// "adapter 'power': modbus 10.0.0.5:502: connection refused".
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace instrumeter {

class Status {
 public:
  // Stored in logs and metrics labels by name; values are not persisted.
  enum class Code {
    kOk,
    kInvalidArgument,     // bad input: config, message, command line
    kNotFound,            // a named thing does not exist
    kAlreadyExists,       // a unique thing was created twice
    kFailedPrecondition,  // the system is not in a state to do this
    kCorruption,          // stored or received data fails its own checks
    kIoError,             // disk, file or socket failure
    kUnavailable,         // a peer (broker, instrument) cannot be reached now; retrying may help
    kResourceExhausted,   // disk full, queue full
    kInternal,            // a bug
  };

  Status() = default;  // OK

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string msg) {
    return {Code::kInvalidArgument, std::move(msg)};
  }
  static Status NotFound(std::string msg) { return {Code::kNotFound, std::move(msg)}; }
  static Status AlreadyExists(std::string msg) { return {Code::kAlreadyExists, std::move(msg)}; }
  static Status FailedPrecondition(std::string msg) {
    return {Code::kFailedPrecondition, std::move(msg)};
  }
  static Status Corruption(std::string msg) { return {Code::kCorruption, std::move(msg)}; }
  static Status IoError(std::string msg) { return {Code::kIoError, std::move(msg)}; }
  static Status Unavailable(std::string msg) { return {Code::kUnavailable, std::move(msg)}; }
  static Status ResourceExhausted(std::string msg) {
    return {Code::kResourceExhausted, std::move(msg)};
  }
  static Status Internal(std::string msg) { return {Code::kInternal, std::move(msg)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // "context: message"; an OK status stays OK.
  Status WithContext(const std::string& context) const;
  // "IoError: message", or "OK".
  std::string ToString() const;
  static const char* CodeName(Code code);

 private:
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  Code code_ = Code::kOk;
  std::string message_;
};

// Either a T or the non-OK Status that explains its absence.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    if (status_.ok()) status_ = Status::Internal("Result built from an OK status without a value");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }

  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace instrumeter

// Returns early from the calling function when `expr` (a Status) is not OK.
#define INSTRUMETER_RETURN_IF_ERROR(expr) \
  do {                                    \
    ::instrumeter::Status _st = (expr);   \
    if (!_st.ok()) return _st;            \
  } while (false)
