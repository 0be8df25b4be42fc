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

// Batches of `batch_size` over `items`, the last holding the rest; a rest of one item joins the
// batch before it (when there is one). [begin, end) of batch b.
size_t batch_count(size_t items, size_t batch_size);
std::pair<size_t, size_t> batch_range(size_t b, size_t items, size_t batch_size);

class BatchLoader {
 public:
  // `order` lists indices into `set` for this epoch (already shuffled); items beyond the last
  // full batch form a final smaller batch, except a single one, which joins the batch before it
  // (batch_boundaries): BatchNorm in training cannot normalise one value per channel (a 1x1 map
  // deep in the network), and LibTorch throws there.
  // `positions` (optional, one per item of `order`) are the items' positions in the whole
  // epoch's order when this loader serves one rank's shard: each item's augmentation is seeded
  // by it, so a rank draws exactly what a single process draws for the same item.
  BatchLoader(const TrainingSet& set, std::vector<size_t> order, const TrainOptions& o,
              const Preprocessing& pre, int epoch, std::vector<size_t> positions = {});
  ~BatchLoader();
  size_t batches() const { return batch_count(order_.size(), o_.batch_size); }
  // Blocks until the next batch is ready; undefined tensors after the last.
  Batch next();

 private:
  Batch build(size_t b) const;
  void produce();

  const TrainingSet& set_;
  std::vector<size_t> order_, positions_;
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
