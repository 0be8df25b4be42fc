#include "leanseg/fs.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "leanseg/error.h"

namespace leanseg {
namespace fs = std::filesystem;

namespace {
std::string temp_name_for(const std::string& path) {
  std::random_device rd;
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(rd() % 1000000);
}

void fsync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}
}  // namespace

void atomic_write(const std::string& path, const std::function<void(std::ostream&)>& write) {
  fs::path target(path);
  if (target.has_parent_path() && !fs::exists(target.parent_path()))
    throw Error("cannot write '" + path + "': directory '" + target.parent_path().string() +
                "' does not exist");
  const std::string tmp = temp_name_for(path);
  try {
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      if (!out) throw Error("cannot create '" + tmp + "': " + std::strerror(errno));
      write(out);
      out.flush();
      if (!out) throw Error("writing '" + path + "' failed (disk full?)");
    }
    fsync_path(tmp);
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      throw Error("cannot rename '" + tmp + "' to '" + path + "': " + std::strerror(errno));
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
}

std::vector<unsigned char> read_file_bytes(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error("'" + path + "': no such file");
  if (fs::is_directory(path, ec)) throw Error("'" + path + "': is a directory, expected a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("'" + path + "': cannot open: " + std::strerror(errno));
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  in.seekg(0, std::ios::beg);
  std::vector<unsigned char> bytes(static_cast<size_t>(size));
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size))
    throw Error("'" + path + "': read error after " + std::to_string(in.gcount()) + " bytes");
  return bytes;
}

}  // namespace leanseg
