#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "fewrec/core/config.h"

namespace fewrec::cli {

inline constexpr const char* kVersion = "0.1.0";

// Adds every subcommand with its flags to `app`.
void register_commands(CLI::App& app);
// Runs the parsed subcommand; returns the exit code.
int run_selected(CLI::App& app);

// ---- shared by the command files ----------------------------------------

// Flags every config-driven command takes.
struct CommonFlags {
  std::vector<std::string> config_files;
  std::vector<std::string> sets;
  std::string json_out;
  bool quiet = false;
};
void add_common(CLI::App* cmd, CommonFlags& f, bool with_json = true);
// Config files in order, then the --set overrides, on top of `base`.
core::Config build_config(const CommonFlags& f, core::Config base = {});
// Writes pretty JSON to `path` (no-op when empty); errors name the file.
void write_json(const std::string& path, const nlohmann::json& j);
// The handler run when `cmd` is the deepest parsed subcommand.
void set_handler(const CLI::App* cmd, std::function<int()> handler);

// CSV field, quoted when it holds ',', '"' or a newline.
std::string csv_field(const std::string& s);
// Markdown table cell ('|' escaped).
std::string md_cell(const std::string& s);
// Reads the text.* keys of `fewrec encode` (for `fewrec config`).
void probe_text_options(core::Config& config);

// Command groups defined in their own files.
void register_text_commands(CLI::App& app);   // encode, glove
void register_serve_commands(CLI::App& app);  // serve, store import
// Reads the serve.*, store.* and import.* keys (for `fewrec config`).
void probe_serve_options(core::Config& config);
void register_label_commands(CLI::App& app);  // labels
// Reads the labels.* keys of `fewrec labels` (for `fewrec config`).
void probe_label_options(core::Config& config);

}  // namespace fewrec::cli
