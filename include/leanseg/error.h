// Error type used across leanseg. Messages always say which file/option is wrong and why,
// OpenCV-style, so the CLI can print them verbatim.
#pragma once
#include <stdexcept>
#include <string>

namespace leanseg {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws Error(what) when cond is false. Kept as a function (not a macro) so call sites stay
// readable; build the message only on failure by passing a lambda if it is expensive.
inline void require(bool cond, const std::string& what) {
  if (!cond) throw Error(what);
}

// `message` prefixed with "<what> '<path>': " unless it already names `path` (OpenCV's and
// LibTorch's own errors do not say which file they were reading).
inline std::string naming(const std::string& message, const std::string& what, const std::string& path) {
  if (message.find(path) != std::string::npos) return message;
  return what + " '" + path + "': " + message;
}

}  // namespace leanseg
