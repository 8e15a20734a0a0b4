// fewrec::Error — the one exception type of the engine.
//
// Library code throws; `main` and the HTTP layer translate to messages and
// status codes. Use FEWREC_THROW / FEWREC_CHECK for the user's mistakes (bad
// input, bad config, corrupt files) and FEWREC_ASSERT for our own bugs.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace fewrec {

enum class ErrorCode {
  kInvalidArgument,  // bad config, bad option, malformed input data
  kNotFound,         // unknown id, missing file, unknown model name
  kCorrupt,          // artifact or file fails validation
  kIo,               // read / write failure
  kUnavailable,      // operation not supported by this component
  kInternal,         // a bug in fewrec
};

const char* error_code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message, const char* file, int line);

  ErrorCode code() const { return code_; }
  // The user-facing message (same as what()).
  const std::string& message() const { return message_; }
  // Source location that threw, for debug logs; never shown to HTTP clients.
  std::string where() const;

 private:
  ErrorCode code_;
  std::string message_;
  const char* file_;
  int line_;
};

}  // namespace fewrec

// FEWREC_THROW(kInvalidArgument, "bad value `{}` for {}", v, key)
#define FEWREC_THROW(code, ...) \
  throw ::fewrec::Error(::fewrec::ErrorCode::code, ::fmt::format(__VA_ARGS__), __FILE__, __LINE__)

#define FEWREC_CHECK(cond, code, ...) \
  do {                                \
    if (!(cond)) FEWREC_THROW(code, __VA_ARGS__); \
  } while (0)

// Internal invariants: a failure is a bug in fewrec, not the user's mistake.
#define FEWREC_ASSERT(cond)                                                             \
  do {                                                                                  \
    if (!(cond))                                                                        \
      throw ::fewrec::Error(::fewrec::ErrorCode::kInternal,                             \
                            "internal error: assertion `" #cond "` failed", __FILE__, __LINE__); \
  } while (0)
