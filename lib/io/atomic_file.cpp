// write_file_atomically (see atomic_file.h): temporary file, fsync, rename.
#include "io/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace bridle {

namespace {

std::string errno_text() { return std::strerror(errno); }

// fsync a file or directory by path. Directories are best effort: some file
// systems refuse to sync them, and the rename has happened either way.
void sync_path(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) {
    BRIDLE_CHECK(directory, "'{}': cannot open it to sync it: {}", path, errno_text());
    return;
  }
  int status = ::fsync(fd);
  std::string error = status != 0 ? errno_text() : "";
  ::close(fd);
  BRIDLE_CHECK(status == 0 || directory, "'{}': fsync failed: {}", path, error);
}

// Removes "<path>.tmp.<pid>" files left by writers whose process is gone (killed
// mid-write). A temporary of a live process is left alone.
void remove_stale_temps(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const std::string prefix = target.filename().string() + ".tmp.";
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto pid = static_cast<pid_t>(std::stol(digits));
    if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    fs::remove(entry.path(), ec);
  }
}

}  // namespace

void write_file_atomically(const std::string& path,
                           const std::function<void(const std::string& temp)>& write) {
  const std::string temp = fmt::format("{}.tmp.{}", path, static_cast<long>(::getpid()));
  try {
    write(temp);
    sync_path(temp, false);
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(temp, ignored);
    throw;
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    std::string error = errno_text();
    std::error_code ignored;
    std::filesystem::remove(temp, ignored);
    BRIDLE_FAIL("'{}': renaming the temporary file '{}' over it failed: {}", path, temp, error);
  }
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  sync_path(parent.empty() ? "." : parent.string(), true);
  remove_stale_temps(path);
}

}  // namespace bridle
