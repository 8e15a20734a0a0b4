#pragma once

#include <CLI/CLI.hpp>

namespace fewrec::cli {

inline constexpr const char* kVersion = "0.1.0";

// Adds every subcommand with its flags to `app`.
void register_commands(CLI::App& app);
// Runs the parsed subcommand; returns the exit code.
int run_selected(CLI::App& app);

}  // namespace fewrec::cli
