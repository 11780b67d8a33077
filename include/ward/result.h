// Result<T>: a value or an Error, with the shape of std::expected.
//
// g++ 12 ships <expected> only under -std=c++2b, and clang 14 (used for the
// libFuzzer targets) cannot compile libstdc++'s <expected>, so this is a small
// C++20 stand-in with the same member names; switching to std::expected later
// is one alias.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace ward {

// A failure, with a message that names the operation and its arguments
// (`mount "/proc": EPERM`). `code` is a coarse category used for exit codes.
struct Error {
  enum class Code {
    kPolicy, kSetup, kUsage, kNotFound, kNotExecutable, kInternal,
    // Held sandboxes (ward/lifecycle.h).
    kRuntimeDir, kNameTaken, kNoSandbox, kState, kSupervisorGone
  };
  Code code = Code::kSetup;
  std::string message;

  static Error Policy(std::string m) { return {Code::kPolicy, std::move(m)}; }
  static Error Setup(std::string m) { return {Code::kSetup, std::move(m)}; }
  static Error Usage(std::string m) { return {Code::kUsage, std::move(m)}; }
};

template <typename E>
struct Unexpected {
  E error;
};
inline Unexpected<Error> Fail(Error e) { return {std::move(e)}; }

// E is the error type: ward's Error almost everywhere; parsers of untrusted
// bytes use their own small error structs (e.g. net::DnsError).
template <typename T, typename E = Error>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT
  Result(Unexpected<E> e) : v_(std::in_place_index<1>, std::move(e.error)) {}  // NOLINT
  Result(E e) : v_(std::in_place_index<1>, std::move(e)) {}  // NOLINT

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const E& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, E> v_;
};

template <typename E>
class [[nodiscard]] Result<void, E> {
 public:
  Result() = default;
  Result(Unexpected<E> e) : err_(std::move(e.error)), ok_(false) {}  // NOLINT
  Result(E e) : err_(std::move(e)), ok_(false) {}  // NOLINT
  bool has_value() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const E& error() const { return err_; }

 private:
  E err_;
  bool ok_ = true;
};

}  // namespace ward

// Propagates an error from an expression yielding Result<...>.
#define WARD_TRY(expr)                            \
  do {                                            \
    auto ward_try_r_ = (expr);                    \
    if (!ward_try_r_) return ward_try_r_.error(); \
  } while (0)
