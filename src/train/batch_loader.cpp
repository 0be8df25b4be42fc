#include "batch_loader.h"

#include "leanseg/error.h"
#include "leanseg/inference.h"

namespace leanseg {
namespace {
constexpr size_t kPrefetch = 3;

uint64_t mix(uint64_t a, uint64_t b) {  // splitmix64-style combination of two seeds
  uint64_t z = a + 0x9e3779b97f4a7c15ull * (b + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
}  // namespace

BatchLoader::BatchLoader(const TrainingSet& set, std::vector<size_t> order, const TrainOptions& o,
                         const Preprocessing& pre, int epoch, std::vector<size_t> positions)
    : set_(set), order_(std::move(order)), positions_(std::move(positions)), o_(o), pre_(pre), epoch_(epoch) {
  require(positions_.empty() || positions_.size() == order_.size(), "BatchLoader: one position per item expected");
  worker_ = std::thread([this] { produce(); });
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

size_t batch_count(size_t items, size_t batch_size) {
  const size_t count = (items + batch_size - 1) / batch_size;
  return count > 1 && batch_size > 1 && items % batch_size == 1 ? count - 1 : count;
}

std::pair<size_t, size_t> batch_range(size_t b, size_t items, size_t batch_size) {
  const size_t begin = b * batch_size;
  return {begin, b + 1 == batch_count(items, batch_size) ? items : std::min(items, begin + batch_size)};
}

Batch BatchLoader::build(size_t b) const {
  std::vector<cv::Mat> images, masks;
  const auto [begin, end] = batch_range(b, order_.size(), static_cast<size_t>(o_.batch_size));
  for (size_t pos = begin; pos < end; ++pos) {
    const size_t idx = order_[pos];
    const size_t seed_position = positions_.empty() ? pos : positions_[pos];
    std::mt19937_64 rng(mix(mix(o_.seed, static_cast<uint64_t>(epoch_)), seed_position));
    cv::Mat image, mask;
    if (o_.input_mode == "crop") {
      random_crop(set_.images[idx], set_.masks[idx], o_.input_size, o_.input_size, o_.crop_foreground_p, rng, image, mask);
    } else {
      image = set_.images[idx].clone();
      mask = set_.masks[idx].clone();
    }
    if (o_.augment) augment(image, mask, o_.augment_options, rng);
    images.push_back(image);
    masks.push_back(mask);
  }
  return {images_to_batch(images, pre_), masks_to_batch(masks)};
}

void BatchLoader::produce() {
  try {
    for (size_t b = 0; b < batches(); ++b) {
      Batch batch = build(b);
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || queue_.size() < kPrefetch; });
      if (stop_) return;
      queue_.push_back(std::move(batch));
      cv_.notify_all();
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(mu_);
    error_ = std::current_exception();  // rethrown on the training thread by next()
  }
  std::lock_guard<std::mutex> lock(mu_);
  done_ = true;
  cv_.notify_all();
}

Batch BatchLoader::next() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return !queue_.empty() || stop_ || done_; });
  if (queue_.empty()) {
    if (error_) std::rethrow_exception(error_);
    return {};
  }
  Batch b = std::move(queue_.front());
  queue_.pop_front();
  cv_.notify_all();
  return b;
}

}  // namespace leanseg
