// Builds training batches (augmented, as tensors) in a background thread, in a fixed order.
// Each item's randomness comes from its own seed (run seed, epoch, position), so batches are
// identical whatever the thread timing, which is what makes resume exact.
#pragma once
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "leanseg/train.h"

namespace leanseg {

struct Batch {
  torch::Tensor images, masks;
};

// The training inputs prepared once: images already at the working size in resize mode.
struct TrainingSet {
  std::vector<cv::Mat> images, masks;
};

class BatchLoader {
 public:
  // `order` lists indices into `set` for this epoch (already shuffled); items beyond the last
  // full batch form a final smaller batch.
  BatchLoader(const TrainingSet& set, std::vector<size_t> order, const TrainOptions& o,
              const Preprocessing& pre, int epoch);
  ~BatchLoader();
  size_t batches() const { return (order_.size() + o_.batch_size - 1) / o_.batch_size; }
  // Blocks until the next batch is ready; undefined tensors after the last.
  Batch next();

 private:
  Batch build(size_t b) const;
  void produce();

  const TrainingSet& set_;
  std::vector<size_t> order_;
  const TrainOptions& o_;
  const Preprocessing& pre_;
  int epoch_;
  std::deque<Batch> queue_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false, done_ = false;
  std::exception_ptr error_;
  std::thread worker_;
};

}  // namespace leanseg
