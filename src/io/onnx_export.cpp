#include "leanseg/onnx_export.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include "leanseg/error.h"
#include "leanseg/fs.h"

namespace leanseg {
namespace {

// The opset from which each operator, in the form the graph uses it, is valid ONNX (Add/Mul
// need 7 for numpy-style broadcasting). Softmax is always emitted over the last axis, where the
// pre-13 "flatten to 2-D" semantics and the 13+ single-axis semantics agree.
const std::map<std::string, int>& operator_min_opsets() {
  static const std::map<std::string, int> table = {
      {"Add", 7},     {"Concat", 4},        {"Conv", 1},    {"ConvTranspose", 1}, {"GlobalAveragePool", 1},
      {"HardSigmoid", 6}, {"InstanceNormalization", 6}, {"MatMul", 1}, {"MaxPool", 1}, {"Mul", 7},
      {"Relu", 6},    {"Reshape", 5},       {"Shape", 1},   {"Sigmoid", 6},       {"Softmax", 1},
      {"Transpose", 1},
      // QDQ exports: per-axis (per output channel) scales need opset 13.
      {"QuantizeLinear", 13}, {"DequantizeLinear", 13},
  };
  return table;
}

// Oldest IR version that every runtime supporting `opset` reads.
int64_t ir_version_for(int opset) {
  if (opset <= 11) return onnx::IR_VERSION_2019_9_19;  // 6
  if (opset <= 14) return onnx::IR_VERSION_2020_5_8;   // 7
  return onnx::IR_VERSION;                             // 8
}

void set_type(onnx::ValueInfoProto& info, const GraphValue& v) {
  info.set_name(v.name);
  auto* tensor = info.mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(onnx::TensorProto::FLOAT);
  auto* shape = tensor->mutable_shape();
  for (size_t i = 0; i < v.shape.size(); ++i) {
    auto* dim = shape->add_dim();
    if (v.dim_names[i].empty()) dim->set_dim_value(v.shape[i]);
    else dim->set_dim_param(v.dim_names[i]);
  }
}

void set_tensor(onnx::TensorProto& proto, const GraphTensor& t) {
  proto.set_name(t.name);
  for (int64_t d : t.shape) proto.add_dims(d);
  if (t.type == TensorType::F32) {
    proto.set_data_type(onnx::TensorProto::FLOAT);
    proto.set_raw_data(t.f32.data(), t.f32.size() * sizeof(float));  // little-endian, as ONNX requires
  } else if (t.type == TensorType::I8) {
    proto.set_data_type(onnx::TensorProto::INT8);
    proto.set_raw_data(t.i8.data(), t.i8.size());
  } else {
    proto.set_data_type(onnx::TensorProto::INT64);
    proto.set_raw_data(t.i64.data(), t.i64.size() * sizeof(int64_t));
  }
}

void set_node(onnx::NodeProto& proto, const GraphNode& n) {
  proto.set_op_type(n.op);
  proto.set_name(n.name);
  for (const auto& in : n.inputs) proto.add_input(in);
  for (const auto& out : n.outputs) proto.add_output(out);
  for (const auto& a : n.attributes) {
    auto* attr = proto.add_attribute();
    attr->set_name(a.name);
    switch (a.kind) {
      case GraphAttribute::Kind::Int:
        attr->set_type(onnx::AttributeProto::INT);
        attr->set_i(a.i);
        break;
      case GraphAttribute::Kind::Float:
        attr->set_type(onnx::AttributeProto::FLOAT);
        attr->set_f(a.f);
        break;
      case GraphAttribute::Kind::Ints:
        attr->set_type(onnx::AttributeProto::INTS);
        for (int64_t v : a.ints) attr->add_ints(v);
        break;
    }
  }
}

onnx::ModelProto to_model_proto(const Graph& graph, const OnnxOptions& options) {
  onnx::ModelProto model;
  model.set_ir_version(ir_version_for(options.opset));
  model.set_producer_name("leanseg");
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(options.opset);
  for (const auto& [key, value] : options.metadata) {
    auto* prop = model.add_metadata_props();
    prop->set_key(key);
    prop->set_value(value);
  }
  auto* g = model.mutable_graph();
  g->set_name(graph.name);
  for (const auto& v : graph.inputs) set_type(*g->add_input(), v);
  for (const auto& v : graph.outputs) set_type(*g->add_output(), v);
  for (const auto& t : graph.initializers) set_tensor(*g->add_initializer(), t);
  for (const auto& n : graph.nodes) set_node(*g->add_node(), n);
  return model;
}

// The checker validates structure and operator schemas; strict shape inference (on a copy, so
// the file stays lean) additionally catches inconsistent shapes, e.g. a conv whose weight does
// not match its input channels.
void check_model_proto(const onnx::ModelProto& model) {
  try {
    onnx::checker::check_model(model);
    onnx::ModelProto inferred = model;
    onnx::shape_inference::InferShapes(inferred, onnx::OpSchemaRegistry::Instance(),
                                       onnx::ShapeInferenceOptions(/*check_type=*/true, /*strict=*/1));
  } catch (const std::exception& e) {
    throw Error("ONNX checker rejected graph '" + model.graph().name() + "': " + e.what());
  }
}

}  // namespace

void check_opset(const Graph& graph, int opset) {
  const std::string range = std::to_string(kOnnxMinOpset) + "–" + std::to_string(kOnnxMaxOpset);
  require(opset <= kOnnxMaxOpset,
          "opset " + std::to_string(opset) + " is newer than this ONNX library knows (supported: " + range + ")");
  const auto& table = operator_min_opsets();
  for (const auto& n : graph.nodes) {
    auto it = table.find(n.op);
    require(it != table.end(), "graph '" + graph.name + "': node '" + n.name + "' uses operator " + n.op +
                                   " that the ONNX writer does not know");
    require(opset >= it->second, "opset " + std::to_string(opset) + " is too old for operator " + n.op + " (node '" +
                                     n.name + "'): it needs opset >= " + std::to_string(it->second) +
                                     " (supported: " + range + ")");
  }
  require(opset >= kOnnxMinOpset, "opset " + std::to_string(opset) + " is too old (supported: " + range + ")");
}

std::string onnx_model_bytes(const Graph& graph, const OnnxOptions& options) {
  graph.validate();
  check_opset(graph, options.opset);
  const onnx::ModelProto model = to_model_proto(graph, options);
  check_model_proto(model);
  std::string bytes;
  require(model.SerializeToString(&bytes),
          "graph '" + graph.name + "': protobuf serialization failed (model over 2 GB?)");
  return bytes;
}

void write_onnx(const Graph& graph, const std::string& path, const OnnxOptions& options) {
  const std::string bytes = onnx_model_bytes(graph, options);
  atomic_write(path, [&](std::ostream& out) { out.write(bytes.data(), static_cast<std::streamsize>(bytes.size())); });
}

}  // namespace leanseg
