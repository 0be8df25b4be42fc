#include "leanseg/prediction.h"

#include <cmath>
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <iostream>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "leanseg/data.h"
#include "leanseg/error.h"
#include "leanseg/fs.h"
#include "leanseg/runtime.h"
#include "leanseg/safetensors.h"

namespace leanseg {
namespace fs = std::filesystem;
namespace {

// Overlapping tiles of the model input size with a linear-ramp blend weight, so seams vanish.
cv::Mat run_tiled(const Preprocessing& pre, const cv::Mat& padded, int divisor, const ProbabilityFn& run) {
  const int th = std::min(pre.input_height, padded.rows), tw = std::min(pre.input_width, padded.cols);
  const int sh = std::max(divisor, th - th / 4), sw = std::max(divisor, tw - tw / 4);
  cv::Mat acc, wsum = cv::Mat::zeros(padded.size(), CV_32FC1);
  cv::Mat weight(th, tw, CV_32FC1), weight_per_class;  // the weight repeated for each class channel
  for (int y = 0; y < th; ++y)
    for (int x = 0; x < tw; ++x) {
      const float wy = std::min(y + 1, th - y) / static_cast<float>(th / 2 + 1);
      const float wx = std::min(x + 1, tw - x) / static_cast<float>(tw / 2 + 1);
      weight.at<float>(y, x) = std::max(1e-3f, std::min(wy, 1.f) * std::min(wx, 1.f));
    }
  auto starts = [](int total, int tile, int step) {
    std::vector<int> s;
    for (int p = 0;; p += step) {
      if (p + tile >= total) {
        s.push_back(std::max(0, total - tile));
        break;
      }
      s.push_back(p);
    }
    return s;
  };
  for (int y : starts(padded.rows, th, sh))
    for (int x : starts(padded.cols, tw, sw)) {
      const cv::Rect r(x, y, tw, th);
      cv::Mat p = run(padded(r).clone());
      if (acc.empty()) {
        acc = cv::Mat::zeros(padded.size(), p.type());
        cv::merge(std::vector<cv::Mat>(static_cast<size_t>(p.channels()), weight), weight_per_class);
      }
      acc(r) += p.mul(weight_per_class);
      wsum(r) += weight;
    }
  std::vector<cv::Mat> planes;
  cv::split(acc, planes);
  for (auto& plane : planes) plane /= wsum;
  cv::Mat out;
  cv::merge(planes, out);
  return out;
}

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".tif" || ext == ".tiff" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp" ||
         ext == ".ppm" || ext == ".dcm" || ext == ".dicom";
}

}  // namespace

cv::Mat predict_probability_with(const Preprocessing& pre, int size_divisor, const cv::Mat& image01,
                                 const ProbabilityFn& run) {
  if (pre.mode == "resize" && pre.resize == "letterbox")
    return unletterbox(run(letterbox_image(image01, pre.input_height, pre.input_width)), image01.size());
  if (pre.mode == "resize") {
    cv::Mat prob = run(resize_image(image01, pre.input_height, pre.input_width));
    cv::Mat full;
    cv::resize(prob, full, image01.size(), 0, 0, cv::INTER_LINEAR);
    return full;
  }
  cv::Mat padded = pad_to_multiple(image01, size_divisor, /*reflect=*/true);
  cv::Mat prob = pre.mode == "pad" ? run(padded) : run_tiled(pre, padded, size_divisor, run);
  return prob(cv::Rect(0, 0, image01.cols, image01.rows)).clone();
}

const std::vector<std::string>& tta_names() {
  static const std::vector<std::string> names = {"none", "h", "hv"};
  return names;
}

ProbabilityFn mirrored_probability_fn(ProbabilityFn run, const std::string& tta) {
  require(std::find(tta_names().begin(), tta_names().end(), tta) != tta_names().end(),
          "test-time augmentation '" + tta + "': expected none, h (left-right mirror) or hv (both mirrors)");
  if (tta == "none") return run;
  // OpenCV's flip codes: 1 left-right, 0 up-down, -1 both.
  std::vector<int> flips = {1};
  if (tta == "hv") flips = {1, 0, -1};
  return [run = std::move(run), flips](const cv::Mat& image01) {
    cv::Mat sum = run(image01).clone();
    for (int code : flips) {
      cv::Mat flipped, back;
      cv::flip(image01, flipped, code);
      cv::flip(run(flipped), back, code);
      sum += back;
    }
    return cv::Mat(sum / static_cast<double>(flips.size() + 1));
  };
}

const std::vector<std::string>& postprocess_names() {
  static const std::vector<std::string> names = {"none", "largest", "ellipse"};
  return names;
}

cv::Mat postprocess_mask(const cv::Mat& mask, const std::string& how, int num_classes) {
  require(std::find(postprocess_names().begin(), postprocess_names().end(), how) != postprocess_names().end(),
          "post-processing '" + how + "': expected none, largest (largest connected component) or ellipse (the filled "
          "fitted ellipse)");
  if (how == "none") return mask;
  if (num_classes > 2) {
    require(how == "largest", "post-processing 'ellipse' fits one object; a " + std::to_string(num_classes) +
                                  "-class label map takes none or largest");
    cv::Mat out = cv::Mat::zeros(mask.size(), CV_8UC1);
    for (int c = 1; c < num_classes; ++c) {
      const cv::Mat largest = largest_component(mask == c);
      if (!largest.empty()) out.setTo(c, largest);
    }
    return out;
  }
  if (how == "ellipse") return filled_ellipse(fit_ellipse(mask), mask.size());
  const cv::Mat largest = largest_component(mask);
  if (largest.empty()) return cv::Mat::zeros(mask.size(), CV_8UC1);
  return largest / 255;
}

std::vector<float> image_to_planar(const cv::Mat& image01, const Preprocessing& pre) {
  require(image01.depth() == CV_32F, "image_to_planar: expected a float image");
  const int c = image01.channels();
  require(c == static_cast<int>(pre.channels.size()),
          "image has " + std::to_string(c) + " channels, the model expects " + std::to_string(pre.channels.size()));
  std::vector<float> out(static_cast<size_t>(c) * image01.rows * image01.cols);
  const float mean = static_cast<float>(pre.mean), inv_std = static_cast<float>(1.0 / pre.std);
  const size_t plane = static_cast<size_t>(image01.rows) * image01.cols;
  for (int y = 0; y < image01.rows; ++y) {
    const float* row = image01.ptr<float>(y);
    for (int x = 0; x < image01.cols; ++x)
      for (int k = 0; k < c; ++k)
        out[k * plane + static_cast<size_t>(y) * image01.cols + x] = (row[x * c + k] - mean) * inv_std;
  }
  return out;
}

cv::Mat argmax_labels(const cv::Mat& prob) {
  require(prob.depth() == CV_32F && prob.channels() >= 2 && prob.channels() <= 256,
          "argmax_labels: expected a float map of 2 to 256 class channels");
  const int k = prob.channels();
  cv::Mat labels(prob.size(), CV_8UC1);
  for (int y = 0; y < prob.rows; ++y) {
    const float* p = prob.ptr<float>(y);
    uchar* out = labels.ptr<uchar>(y);
    for (int x = 0; x < prob.cols; ++x, p += k)
      out[x] = static_cast<uchar>(std::max_element(p, p + k) - p);  // the first of equal maxima
  }
  return labels;
}

cv::Mat segmentation_mask(const cv::Mat& prob, double threshold) {
  return prob.channels() == 1 ? threshold_mask(prob, threshold) : argmax_labels(prob);
}

cv::Mat threshold_mask(const cv::Mat& prob, double threshold) {
  cv::Mat m;
  cv::threshold(prob, m, threshold, 1.0, cv::THRESH_BINARY);
  m.convertTo(m, CV_8UC1);
  return m;
}

cv::Mat overlay_image(const cv::Mat& image01, const cv::Mat& mask, const EllipseFit* fit) {
  cv::Mat grey, bgr;
  cv::extractChannel(image01, grey, 0);
  grey.convertTo(grey, CV_8U, 255.0);
  cv::cvtColor(grey, bgr, cv::COLOR_GRAY2BGR);
  std::vector<std::vector<cv::Point>> contours;
  cv::findContours(mask.clone(), contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_NONE);
  cv::drawContours(bgr, contours, -1, cv::Scalar(0, 255, 0), 2);
  if (fit && fit->ok)
    cv::ellipse(bgr, cv::RotatedRect(cv::Point2f(fit->cx, fit->cy), cv::Size2f(2 * fit->semi_a, 2 * fit->semi_b), fit->angle_deg),
                cv::Scalar(0, 0, 255), 1);
  return bgr;
}

cv::Scalar class_colour(int c) {
  // BGR: green, red, blue, yellow, magenta, cyan, orange, purple; then hues spread by the golden angle.
  static const cv::Scalar palette[] = {{0, 255, 0},   {0, 0, 255},   {255, 0, 0},   {0, 255, 255},
                                       {255, 0, 255}, {255, 255, 0}, {0, 128, 255}, {255, 0, 128}};
  if (c >= 1 && c <= 8) return palette[c - 1];
  cv::Mat hsv(1, 1, CV_8UC3, cv::Scalar(static_cast<int>(c * 137.508) % 180, 255, 255)), bgr;
  cv::cvtColor(hsv, bgr, cv::COLOR_HSV2BGR);
  const cv::Vec3b v = bgr.at<cv::Vec3b>(0, 0);
  return {static_cast<double>(v[0]), static_cast<double>(v[1]), static_cast<double>(v[2])};
}

cv::Mat label_overlay_image(const cv::Mat& image01, const cv::Mat& labels, int num_classes) {
  cv::Mat grey, bgr;
  cv::extractChannel(image01, grey, 0);
  grey.convertTo(grey, CV_8U, 255.0);
  cv::cvtColor(grey, bgr, cv::COLOR_GRAY2BGR);
  cv::Mat colours(bgr.size(), CV_8UC3, cv::Scalar::all(0));
  for (int c = 1; c < num_classes; ++c) colours.setTo(class_colour(c), labels == c);
  cv::Mat blended;
  cv::addWeighted(bgr, 0.55, colours, 0.45, 0.0, blended);
  blended.copyTo(bgr, labels != 0);  // background pixels keep the image
  return bgr;
}

std::vector<unsigned char> encode_png(const cv::Mat& m, const std::string& path) {
  std::vector<unsigned char> buf;
  require(cv::imencode(".png", m, buf), "cannot encode " + path);
  return buf;
}

void write_bytes(const std::string& path, const std::vector<unsigned char>& bytes) {
  atomic_write(path, [&](std::ostream& o) { o.write(reinterpret_cast<const char*>(bytes.data()), bytes.size()); });
}

void write_png(const std::string& path, const cv::Mat& m) { write_bytes(path, encode_png(m, path)); }

std::vector<std::vector<std::string>> expand_image_inputs(const std::vector<std::string>& inputs) {
  std::vector<std::vector<std::string>> jobs;
  for (const auto& in : inputs) {
    if (fs::is_directory(in)) {
      std::vector<std::string> files;
      for (const auto& e : fs::directory_iterator(in))
        if (e.is_regular_file() && is_image_file(e.path()) && e.path().string().find("_Annotation") == std::string::npos)
          files.push_back(e.path().string());
      std::sort(files.begin(), files.end());
      for (const auto& f : files) jobs.push_back({f});
    } else {
      jobs.push_back(split_plus(in));
    }
  }
  require(!jobs.empty(), "no input images");
  return jobs;
}

std::vector<std::string> split_plus(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t pos; (pos = s.find('+', start)) != std::string::npos; start = pos + 1) out.push_back(s.substr(start, pos - start));
  out.push_back(s.substr(start));
  return out;
}

std::vector<std::string> job_files(const std::vector<std::string>& job, size_t channels) {
  require(!job.empty(), "an input job without files");
  require(job.size() == 1 || job.size() == channels,
          "'" + job[0] + "...' gives " + std::to_string(job.size()) + " files, the model takes " +
              std::to_string(channels) + " channel" + (channels == 1 ? "" : "s") +
              " (one file, or one file per channel joined with '+')");
  return job.size() == 1 ? std::vector<std::string>(channels, job[0]) : job;
}

void check_prediction_jobs(const std::vector<std::vector<std::string>>& jobs, size_t channels) {
  std::map<std::string, std::string> stems;  // output stem → the input that claims it
  for (const auto& job : jobs) {
    for (const auto& path : job_files(job, channels)) {
      std::error_code ec;
      require(fs::is_regular_file(path, ec), "input image '" + path + "' does not exist");
    }
    const std::string stem = fs::path(job[0]).stem().string();
    const auto [it, fresh] = stems.emplace(stem, job[0]);
    require(fresh, "inputs '" + it->second + "' and '" + job[0] + "' have the same file stem: both would write " +
                       stem + "_mask.png; rename one of them");
  }
}

EncodedFiles encode_prediction_pngs(const std::string& stem, const cv::Mat& image01, const cv::Mat& prob,
                                    const cv::Mat& mask, bool overlay, const EllipseFit* fit) {
  if (prob.channels() > 1) {
    const int k = prob.channels();
    EncodedFiles files;
    files.emplace_back(stem + "_labels.png", encode_png(mask, stem + "_labels.png"));
    for (int c = 0; c < k; ++c) {
      cv::Mat plane, plane8;
      cv::extractChannel(prob, plane, c);
      plane.convertTo(plane8, CV_8U, 255.0);
      const std::string path = stem + "_prob_" + std::to_string(c) + ".png";
      files.emplace_back(path, encode_png(plane8, path));
    }
    if (overlay)
      files.emplace_back(stem + "_overlay.png", encode_png(label_overlay_image(image01, mask, k), stem + "_overlay.png"));
    return files;
  }
  cv::Mat prob8;
  prob.convertTo(prob8, CV_8U, 255.0);
  EncodedFiles files;
  files.emplace_back(stem + "_mask.png", encode_png(mask * 255, stem + "_mask.png"));
  files.emplace_back(stem + "_prob.png", encode_png(prob8, stem + "_prob.png"));
  if (overlay) files.emplace_back(stem + "_overlay.png", encode_png(overlay_image(image01, mask, fit), stem + "_overlay.png"));
  return files;
}

void write_files(const EncodedFiles& files) {
  for (const auto& [path, bytes] : files) write_bytes(path, bytes);
}

size_t for_each_job(const std::vector<std::vector<std::string>>& jobs, bool skip_errors, const std::string& program,
                    const std::function<void(const std::vector<std::string>& job)>& one) {
  size_t failed = 0;
  for (const auto& job : jobs) {
    try {
      one(job);
    } catch (const std::exception& e) {  // OpenCV's and LibTorch's own errors included
      const std::string message = naming(e.what(), "input image", job[0]);
      if (!skip_errors) throw Error(message);
      std::cerr << program << ": skipped " << job[0] << ": " << message << "\n" << std::flush;
      ++failed;
    }
  }
  return failed;
}

void require_no_failed_jobs(size_t failed, size_t total) {
  require(failed == 0, std::to_string(failed) + " of " + std::to_string(total) +
                           " images failed (skipped as reported above; the others were written)");
}

cv::Mat softmax_planar(const float* logits, int channels, int height, int width) {
  const size_t plane = static_cast<size_t>(height) * width;
  cv::Mat prob(height, width, CV_32FC(channels));
  float* p = prob.ptr<float>();  // a new Mat is continuous
  std::vector<float> e(static_cast<size_t>(channels));
  for (size_t i = 0; i < plane; ++i) {
    float highest = logits[i];
    for (int c = 1; c < channels; ++c) highest = std::max(highest, logits[c * plane + i]);
    float sum = 0;
    for (int c = 0; c < channels; ++c) sum += e[c] = std::exp(logits[c * plane + i] - highest);
    for (int c = 0; c < channels; ++c) p[i * channels + c] = e[c] / sum;
  }
  return prob;
}

ProbabilityFn engine_probability_fn(runtime::Engine& engine, const Preprocessing& pre) {
  return [&engine, &pre](const cv::Mat& image01) {
    engine.set_input_size(image01.rows, image01.cols);
    const std::vector<float> x = image_to_planar(image01, pre);
    const std::vector<float>& logits = engine.run(x.data());
    const int k = engine.output_channels();
    require(logits.size() == static_cast<size_t>(k) * image01.rows * image01.cols,
            "runtime model '" + engine.model().graph.name + "': its output " + shape_str(engine.output_shape()) +
                " is not " + std::to_string(k) + " logits per pixel of the " + std::to_string(image01.rows) + "x" +
                std::to_string(image01.cols) + " input");
    if (k > 1) return softmax_planar(logits.data(), k, image01.rows, image01.cols);
    cv::Mat prob(image01.rows, image01.cols, CV_32FC1);
    float* p = prob.ptr<float>();
    for (size_t i = 0; i < logits.size(); ++i) p[i] = 1.f / (1.f + std::exp(-logits[i]));
    return prob;
  };
}

}  // namespace leanseg
