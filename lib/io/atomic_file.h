// Writing a file so that a reader (or a crash) never sees half of it: the
// contents go to "<path>.tmp.<pid>", which is flushed to disk and then renamed
// over path in one step. Checkpoints and exported predictions are written this way.
#pragma once

#include <functional>
#include <string>

namespace bridle {

// Calls write(temp) to create and fill the temporary file, fsyncs it, renames it
// over path and fsyncs the directory; then removes "<path>.tmp.<pid>" files left
// by earlier writers that were killed mid-write. If write throws, or the rename
// fails, the temporary is removed, path is left as it was, and the error (naming
// path) propagates.
void write_file_atomically(const std::string& path,
                           const std::function<void(const std::string& temp)>& write);

}  // namespace bridle
