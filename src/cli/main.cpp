// fewrec — command-line entry point. The one place that turns exceptions
// into messages and exit codes.
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <string>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "fewrec/core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"fewrec — recommendations from few data"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("fewrec ") + fewrec::cli::kVersion);
  fewrec::cli::register_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return fewrec::cli::run_selected(app);
  } catch (const fewrec::Error& e) {
    std::fprintf(stderr, "%sfewrec: error: %s\n", isatty(2) ? "\r\x1b[K" : "", e.what());
    if (std::getenv("FEWREC_DEBUG")) std::fprintf(stderr, "  (thrown at %s)\n", e.where().c_str());
    return e.code() == fewrec::ErrorCode::kInternal ? 3 : 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fewrec: internal error: %s\n", e.what());
    return 3;
  }
}
