// TIFF pages read_raw_image hands to libtiff: multi-page files (a page chosen with --page),
// multi-channel (non-colour) samples (one chosen with --channel) and 32-bit float pixels.
// Single-page grey or colour integer TIFFs keep going through OpenCV's decoder, as before.
#include <tiffio.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <opencv2/imgproc.hpp>
#include <vector>

#include "image_io.h"
#include "leanseg/error.h"

namespace leanseg::data_detail {
namespace {

using TiffHandle = std::unique_ptr<TIFF, void (*)(TIFF*)>;

TiffHandle open_tiff(const std::string& path, const std::string& role) {
  TIFFSetWarningHandler(nullptr);  // notes on private tags are no errors here
  TIFFSetErrorHandler(nullptr);    // the Error below says what is wrong, naming the file
  TiffHandle tif(TIFFOpen(path.c_str(), "r"), [](TIFF* t) {
    if (t) TIFFClose(t);
  });
  require(tif != nullptr, role + " '" + path + "' cannot be decoded (corrupt, truncated or not a TIFF)");
  return tif;
}

struct PageLayout {
  uint32_t width = 0, height = 0;
  uint16_t samples = 1, bits = 1, format = SAMPLEFORMAT_UINT, photometric = PHOTOMETRIC_MINISBLACK,
           planar = PLANARCONFIG_CONTIG, extra = 0;  // extra: alpha samples
  bool tiled = false;
  bool colour() const { return photometric == PHOTOMETRIC_RGB; }
  // Samples that are not alpha: 3 for RGB(A), n for n microscope channels.
  int data_samples() const { return samples - extra; }
};

PageLayout page_layout(TIFF* tif) {
  PageLayout l;
  TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &l.width);
  TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &l.height);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &l.samples);
  TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &l.bits);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &l.format);
  TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &l.planar);
  TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &l.photometric);
  // Only alpha counts as extra: libtiff itself marks the samples beyond the first of a grey
  // image "unspecified" extra samples, and those are the microscope's channels.
  uint16_t extra_count = 0;
  uint16_t* extra_types = nullptr;
  TIFFGetFieldDefaulted(tif, TIFFTAG_EXTRASAMPLES, &extra_count, &extra_types);
  for (uint16_t i = 0; i < extra_count && extra_types != nullptr; ++i)
    if (extra_types[i] == EXTRASAMPLE_ASSOCALPHA || extra_types[i] == EXTRASAMPLE_UNASSALPHA) ++l.extra;
  if (l.extra >= l.samples) l.extra = 0;
  l.tiled = TIFFIsTiled(tif) != 0;
  return l;
}

int mat_depth(const PageLayout& l, const std::string& path, const std::string& role) {
  if (l.format == SAMPLEFORMAT_UINT && l.bits == 8) return CV_8U;
  if (l.format == SAMPLEFORMAT_UINT && l.bits == 16) return CV_16U;
  if (l.format == SAMPLEFORMAT_IEEEFP && l.bits == 32) return CV_32F;
  throw Error(role + " '" + path + "' has " + std::to_string(l.bits) + "-bit " +
              (l.format == SAMPLEFORMAT_IEEEFP ? "float" : l.format == SAMPLEFORMAT_INT ? "signed" : "unsigned") +
              " samples; leanseg reads multi-page, multi-channel and float TIFFs of 8- or 16-bit unsigned or 32-bit "
              "float samples");
}

// Copies one decoded chunk (a strip or tile of `rows` x `cols` pixels, `samples` interleaved
// samples of `bytes` each) into `out` at (x0, y0), sample plane `plane` (-1: all, interleaved).
void copy_chunk(const std::vector<unsigned char>& chunk, uint32_t chunk_cols, uint32_t rows, uint32_t x0, uint32_t y0,
                int samples_in_chunk, int plane, size_t bytes, cv::Mat& out) {
  const uint32_t cols = std::min<uint32_t>(chunk_cols, out.cols - x0);
  const int out_samples = out.channels();
  for (uint32_t y = 0; y < rows && y0 + y < static_cast<uint32_t>(out.rows); ++y) {
    const unsigned char* src = chunk.data() + static_cast<size_t>(y) * chunk_cols * samples_in_chunk * bytes;
    unsigned char* dst = out.ptr(y0 + y) + static_cast<size_t>(x0) * out_samples * bytes;
    if (plane < 0) {
      std::memcpy(dst, src, static_cast<size_t>(cols) * out_samples * bytes);
    } else {
      for (uint32_t x = 0; x < cols; ++x)
        std::memcpy(dst + (static_cast<size_t>(x) * out_samples + plane) * bytes, src + x * bytes, bytes);
    }
  }
}

// The current page, every sample, in file order (no RGB -> BGR swap).
cv::Mat decode_page(TIFF* tif, const PageLayout& l, int depth, const std::string& path, const std::string& role) {
  require(l.photometric == PHOTOMETRIC_MINISBLACK || l.photometric == PHOTOMETRIC_RGB,
          role + " '" + path + "' has a photometric interpretation (" + std::to_string(l.photometric) +
              ") leanseg does not read in multi-page or float TIFFs (grey or RGB samples)");
  require(l.width > 0 && l.height > 0 && l.samples >= 1 && l.samples <= 64,
          role + " '" + path + "' has an unusable size or sample count");
  cv::Mat out(static_cast<int>(l.height), static_cast<int>(l.width), CV_MAKETYPE(depth, l.samples));
  const size_t bytes = l.bits / 8;
  const bool separate = l.planar == PLANARCONFIG_SEPARATE && l.samples > 1;
  const int samples_in_chunk = separate ? 1 : l.samples;
  const std::string corrupt = role + " '" + path + "' cannot be decoded (corrupt or truncated TIFF data)";
  if (l.tiled) {
    uint32_t tw = 0, th = 0;
    TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw);
    TIFFGetField(tif, TIFFTAG_TILELENGTH, &th);
    require(tw > 0 && th > 0, corrupt);
    std::vector<unsigned char> chunk(TIFFTileSize(tif));
    for (int plane = 0; plane < (separate ? l.samples : 1); ++plane)
      for (uint32_t y = 0; y < l.height; y += th)
        for (uint32_t x = 0; x < l.width; x += tw) {
          const ttile_t t = TIFFComputeTile(tif, x, y, 0, static_cast<uint16_t>(plane));
          require(TIFFReadEncodedTile(tif, t, chunk.data(), chunk.size()) >= 0, corrupt);
          copy_chunk(chunk, tw, th, x, y, samples_in_chunk, separate ? plane : -1, bytes, out);
        }
    return out;
  }
  uint32_t rows_per_strip = l.height;
  TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rows_per_strip);
  rows_per_strip = std::min(std::max<uint32_t>(rows_per_strip, 1), l.height);
  std::vector<unsigned char> chunk(TIFFStripSize(tif));
  for (int plane = 0; plane < (separate ? l.samples : 1); ++plane)
    for (uint32_t y = 0; y < l.height; y += rows_per_strip) {
      const tstrip_t s = TIFFComputeStrip(tif, y, static_cast<uint16_t>(plane));
      require(TIFFReadEncodedStrip(tif, s, chunk.data(), chunk.size()) >= 0, corrupt);
      copy_chunk(chunk, l.width, rows_per_strip, 0, y, samples_in_chunk, separate ? plane : -1, bytes, out);
    }
  return out;
}

}  // namespace

cv::Mat pick_channel(const cv::Mat& raw, int channel, bool bgr_order, const std::string& path) {
  if (channel < 0) return raw;
  const int n = raw.channels();
  require(channel < n, "image '" + path + "' has " + std::to_string(n) + " channel" + (n == 1 ? "" : "s") +
                           "; --channel " + std::to_string(channel) + " is out of range (0.." + std::to_string(n - 1) +
                           ")");
  // OpenCV holds colour as B, G, R (, A); --channel counts samples in file order (R, G, B).
  const int index = bgr_order && n >= 3 && channel < 3 ? 2 - channel : channel;
  cv::Mat out;
  cv::extractChannel(raw, out, index);
  return out;
}

size_t tiff_page_count(const std::string& path, const std::string& role) {
  const TiffHandle tif = open_tiff(path, role);
  return TIFFNumberOfDirectories(tif.get());
}

cv::Mat read_tiff_image(const std::string& path, const std::string& role, const ImageReadOptions& o,
                        const std::function<cv::Mat()>& read_with_opencv) {
  const TiffHandle tif = open_tiff(path, role);
  const size_t pages = TIFFNumberOfDirectories(tif.get());
  const int page = std::max(o.page, 0);
  require(static_cast<size_t>(page) < pages,
          role + " '" + path + "' has " + std::to_string(pages) + " page" + (pages == 1 ? "" : "s") + "; --page " +
              std::to_string(page) + " is out of range (0.." + std::to_string(pages - 1) + ")");
  // Reading page 0 of a stack without being told would otherwise go unnoticed.
  if (pages > 1 && o.page < 0)
    warn(role + " '" + path + "' has " + std::to_string(pages) + " pages; reading page 0 (--page N chooses another)");
  require(TIFFSetDirectory(tif.get(), static_cast<uint16_t>(page)) == 1,
          role + " '" + path + "': page " + std::to_string(page) + " cannot be read (corrupt TIFF)");
  const PageLayout l = page_layout(tif.get());
  const bool multi_channel = l.data_samples() > 1 && !l.colour();
  if (pages == 1 && l.format != SAMPLEFORMAT_IEEEFP && !multi_channel && l.samples <= 4)
    return pick_channel(read_with_opencv(), o.channel, true, path);  // plain grey or colour: as before

  require(!multi_channel || o.channel >= 0,
          role + " '" + path + "' has " + std::to_string(l.data_samples()) + " channels" +
              (pages > 1 ? " (page " + std::to_string(page) + ")" : "") + "; choose one with --channel 0.." +
              std::to_string(l.data_samples() - 1));
  cv::Mat raw = decode_page(tif.get(), l, mat_depth(l, path, role), path, role);
  if (o.channel >= 0) return pick_channel(raw, o.channel, false, path);
  if (l.colour() && (l.samples == 3 || l.samples == 4))  // B, G, R (, A) as imread gives colour
    cv::cvtColor(raw, raw, l.samples == 3 ? cv::COLOR_RGB2BGR : cv::COLOR_RGBA2BGRA);
  return raw;
}

}  // namespace leanseg::data_detail
