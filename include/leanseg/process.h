// Running other programs (gnuplot, leanseg's own commands for isolated measurements). Torch-free.
#pragma once
#include <string>
#include <vector>

namespace leanseg {

// Full path of an executable found on PATH, or "" when there is none.
std::string find_on_path(const std::string& program);

// Runs argv[0] (a path) with stdin from /dev/null, stdout into `stdout_path` and stderr into
// `stderr_path` ("" = same file as stdout). Returns the wait status. Throws Error when the
// program cannot be started.
int run_process(const std::vector<std::string>& argv, const std::string& stdout_path, const std::string& stderr_path = "");
// "exit status N" / "killed by signal N" for a wait status.
std::string status_text(int status);
bool exited_ok(int status);

// The running executable's directory (/proc/self/exe), to find sibling programs.
std::string executable_dir();

}  // namespace leanseg
