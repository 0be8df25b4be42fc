// File helpers that keep user data safe: every output is written to a temporary file in the
// same directory and renamed into place, so a crash never leaves a half-written file behind.
#pragma once
#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace leanseg {

// Calls write(stream) on a temp file next to `path` ("<path>.tmp.<pid>.<n>"), flushes and fsyncs
// it, then renames it over `path`. On any failure the temp file is removed and Error is thrown
// naming `path`. Temp files of `path` whose writer process no longer exists (a killed run) are
// removed first (the directory is listed once per process).
void atomic_write(const std::string& path, const std::function<void(std::ostream&)>& write);

// Reads a whole file; throws Error naming the file if it cannot be opened or read.
std::vector<unsigned char> read_file_bytes(const std::string& path);

}  // namespace leanseg
