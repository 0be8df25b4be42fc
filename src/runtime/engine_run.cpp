// Execution of a plan, step by step, timed per step when profiled.
#include <chrono>
#include <variant>
#include <dnnl_debug.h>

#include "engine_impl.h"
#include "kernels.h"
#include "reference.h"
#include "winograd.h"

namespace leanseg::runtime {

namespace {

// What runs a step, for profiles: oneDNN's primitive kind and implementation for primitives
// ("convolution brgconv:avx512_core").
template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

std::string step_kind(const Step& s) {
  return std::visit(Overloaded{[](const PrimitiveStep& p) {
                                 const char* impl = nullptr;
                                 dnnl_primitive_desc_query(p.primitive.get_primitive_desc(), dnnl_query_impl_info_str, 0,
                                                           &impl);
                                 return std::string(dnnl_prim_kind2str(
                                            static_cast<dnnl_primitive_kind_t>(p.primitive.get_kind()))) +
                                        " " + (impl ? impl : "?");
                               },
                               [](const WinogradStep&) { return std::string("winograd"); },
                               [](const UpsampleStep&) { return std::string("depthwise-upsample"); },
                               [](const CopyStep&) { return std::string("host-copy"); },
                               [](const HostOpStep& h) { return "host:" + h.node->op; }},
                    s.work);
}

}  // namespace

void Engine::Impl::run_plan(const float* input, std::vector<StepProfile>* profile) {
  const ScopedOmpThreads omp_threads(thread_count());
  input_user.set_data_handle(const_cast<float*>(input));
  if (profile) profile->clear();
  for (auto& s : steps) {
    if (!profile) {
      run_step(s);
      continue;
    }
    profile->push_back({s.name, step_kind(s), 0});
    const auto start = std::chrono::steady_clock::now();
    run_step(s);
    stream.wait();
    profile->back().ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  }
  if (values[output_value].host) {
    std::copy(values[output_value].tensor.f32.begin(), values[output_value].tensor.f32.end(), output.begin());
  } else {
    dnnl::reorder(values[output_value].mem, output_user).execute(stream, values[output_value].mem, output_user);
  }
  stream.wait();
}

void Engine::Impl::run_step(Step& s) {
  std::visit(Overloaded{[&](PrimitiveStep& p) { p.primitive.execute(stream, p.args); },
                        [&](WinogradStep& w) {
                          winograd_conv3x3(w.shape, w.sources.data(), static_cast<int>(w.sources.size()),
                                           w.weights.data(), w.bias.empty() ? nullptr : w.bias.data(),
                                           static_cast<float*>(values[w.output].mem.get_data_handle()), w.scratch);
                        },
                        [&](UpsampleStep& u) {
                          const Value& in = values[u.input];
                          depthwise_upsample2x(static_cast<const float*>(in.mem.get_data_handle()),
                                               static_cast<float*>(values[u.output].mem.get_data_handle()),
                                               u.weights.data(), u.bias.empty() ? nullptr : u.bias.data(), in.dims[2],
                                               in.dims[3], in.dims[1]);
                        },
                        [&](CopyStep& c) {
                          Value& in = values[c.input];
                          Value& out = values[c.output];
                          memory host({in.dims, dt::f32, tag::nchw}, cpu, in.tensor.f32.data());
                          if (!in.host) dnnl::reorder(in.mem, host).execute(stream, in.mem, host);  // arena → mirror
                          else dnnl::reorder(host, out.mem).execute(stream, host, out.mem);         // host → arena
                        },
                        [&](HostOpStep& h) {
                          std::vector<const PlainTensor*> ins;
                          for (int v : h.inputs) ins.push_back(&values[v].tensor);
                          values[h.output].tensor = std::move(reference_op(*h.node, ins)[0]);
                        }},
             s.work);
}

}  // namespace leanseg::runtime
