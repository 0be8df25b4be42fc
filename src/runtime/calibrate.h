// INT8 activation calibration: runs the graph with the reference interpreter on calibration
// inputs and records, for every image-shaped value, the magnitude the int8 scale must cover:
// the max |x| (percentile 100) or a percentile of |x| (clips rare outliers, e.g. 99.99).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "leanseg/graph.h"
#include "reference.h"

namespace leanseg::runtime {

// `inputs`: [1, C, H, W] tensors, already normalised, matching the graph's input. Throws Error
// when there are none or the percentile is outside (0, 100].
std::map<std::string, float> calibrate_activations(const Graph& graph, const std::vector<PlainTensor>& inputs,
                                                   double percentile = 100.0);

}  // namespace leanseg::runtime
