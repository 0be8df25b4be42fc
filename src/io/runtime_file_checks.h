// Checks of runtime models shared by the .lsr writer and reader (runtime_file.cpp), and the
// expansion of packed weights both need. Private to src/io.
#pragma once
#include <string>
#include <vector>

#include "leanseg/runtime_file.h"

namespace leanseg::runtime_file {

inline std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

inline const char* kind_name(GraphAttribute::Kind k) {
  switch (k) {
    case GraphAttribute::Kind::Int: return "int";
    case GraphAttribute::Kind::Float: return "float";
    case GraphAttribute::Kind::Ints: return "ints";
  }
  return "?";
}

// Everything the reader refuses: metadata objects, input/output, initializers against the
// graph, engine limits (check_runtime_graph), calibration names, packed weights, structure.
void check_model(const RuntimeModel& m, const std::string& where);

// Expanded values of a packed weight: (q − z) · s per index of axis 0.
std::vector<float> expand(const PackedWeight& p, const std::vector<int64_t>& shape, const std::string& what);
// expand() with every error naming the file and the weight (bit unpacking's own errors do not).
std::vector<float> expand_weight(const PackedWeight& p, const std::vector<int64_t>& shape, const std::string& name,
                                 const std::string& where);

}  // namespace leanseg::runtime_file
