#include "leanseg/fs.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>

#include "leanseg/error.h"

namespace leanseg {
namespace fs = std::filesystem;

namespace {
std::string temp_name_for(const std::string& path) {
  std::random_device rd;
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(rd() % 1000000);
}

// The writer's process id in a temp file name "<target>.tmp.<pid>.<number>" (temp_name_for),
// or 0 when `name` is no temp file name.
long temp_owner(const std::string& name) {
  const size_t tag = name.rfind(".tmp.");
  if (tag == std::string::npos) return 0;
  const std::string rest = name.substr(tag + 5);
  const size_t dot = rest.find('.');
  const auto digits = [](const std::string& t) { return !t.empty() && t.size() <= 9 && t.find_first_not_of("0123456789") == std::string::npos; };
  if (dot == std::string::npos || !digits(rest.substr(0, dot)) || !digits(rest.substr(dot + 1))) return 0;
  return std::stol(rest.substr(0, dot));
}

bool process_alive(long pid) { return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM; }

// Temp files of writers that died (a killed export or compress) in `dir`: listed once per
// process and directory, since a folder run writes thousands of files into one directory.
std::vector<fs::path>& stale_temps(const fs::path& dir) {
  static std::map<fs::path, std::vector<fs::path>> listed;
  std::error_code ec;
  const fs::path key = fs::absolute(dir, ec).lexically_normal();
  auto [it, fresh] = listed.try_emplace(key);
  if (!fresh) return it->second;
  for (fs::directory_iterator e(dir, ec), end; !ec && e != end; e.increment(ec)) {
    const long pid = temp_owner(e->path().filename().string());
    if (pid > 0 && pid != ::getpid() && !process_alive(pid)) it->second.push_back(e->path());
  }
  return it->second;
}

// Removes the temp files of `target` left by writers that died.
void remove_stale_temps(const fs::path& target) {
  static std::mutex mutex;
  const std::lock_guard<std::mutex> lock(mutex);
  auto& stale = stale_temps(target.has_parent_path() ? target.parent_path() : fs::path("."));
  const std::string prefix = target.filename().string() + ".tmp.";
  for (auto it = stale.begin(); it != stale.end();) {
    if (it->filename().string().rfind(prefix, 0) != 0) {
      ++it;
      continue;
    }
    std::error_code ec;
    fs::remove(*it, ec);
    it = stale.erase(it);
  }
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
  remove_stale_temps(target);
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
