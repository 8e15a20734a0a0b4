// fewrec serve / fewrec store import: the recommendation service from the
// command line.
#include <signal.h>

#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <optional>
#include <cstdio>
#include <thread>

#include <fmt/format.h>

#include "commands.h"
#include "fewrec/core/error.h"
#include "fewrec/core/monitor.h"
#include "fewrec/serve/http.h"
#include "fewrec/serve/service.h"
#include "fewrec/store/store.h"
#include "pipeline.h"

namespace fewrec::cli {

namespace {

int g_signal_pipe[2] = {-1, -1};

void on_signal(int sig) {
  const auto c = static_cast<unsigned char>(sig);
  const int saved = errno;
  if (::write(g_signal_pipe[1], &c, 1) < 0) {
  }
  errno = saved;
}

struct ServeFlags {
  CommonFlags common;
} g_serve;

// ---- fewrec serve ----------------------------------------------------------

int cmd_serve() {
  core::Config config = build_config(g_serve.common);
  auto so = serve::ServiceOptions::from_config(config);
  auto ho = serve::HttpOptions::from_config(config);
  config.check_all_used();
  core::StderrMonitor log(g_serve.common.quiet);

  // SIGTERM / SIGINT: the handler (run by whichever thread the kernel picks;
  // libraries start threads before main) writes the signal number to a pipe;
  // a watcher thread reads it and stops the server, which drains.
  if (::pipe(g_signal_pipe) != 0) FEWREC_THROW(kIo, "cannot create a pipe: {}", std::strerror(errno));
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  auto service = serve::Service::open(so, log);
  serve::HttpServer server(*service, ho, log);
  const int port = server.bind();
  std::thread watcher([&] {
    unsigned char sig = 0;
    while (::read(g_signal_pipe[0], &sig, 1) < 0 && errno == EINTR) {
    }
    if (sig != 0) {
      log.info(fmt::format("{}: draining in-flight requests", sig == SIGTERM ? "SIGTERM" : "SIGINT"));
      server.stop();
    }
  });
  const auto st = service->stats();
  log.info(fmt::format("listening on {}:{} (model: {}, {} users, {} items, {} events)", ho.host, port,
                       st.model.empty() ? "none, popularity" : st.model, st.users, st.items, st.feedback));
  server.run();
  const unsigned char zero = 0;  // wakes the watcher when the server stopped on its own
  if (::write(g_signal_pipe[1], &zero, 1) < 0) {
  }
  watcher.join();
  service->close();
  log.info("stopped");
  return 0;
}

// ---- fewrec store import ---------------------------------------------------

// A categorical, numeric or text cell as a string; nullopt when missing.
std::optional<std::string> scalar_value(const data::FeatureColumn& col, int32_t row) {
  const auto r = static_cast<size_t>(row);
  switch (col.kind) {
    case data::FeatureKind::kCategorical:
      if (col.codes[r] >= 0) return col.vocab.id(col.codes[r]);
      return std::nullopt;
    case data::FeatureKind::kNumeric:
      if (!std::isnan(col.numbers[r])) return fmt::format("{}", col.numbers[r]);
      return std::nullopt;
    case data::FeatureKind::kText:
      if (!col.texts[r].empty()) return col.texts[r];
      return std::nullopt;
    case data::FeatureKind::kTags:
      break;
  }
  return std::nullopt;
}

int cmd_store_import() {
  core::Config config = build_config(g_serve.common);
  auto run = read_run_options(config, false);
  const std::string path = config.get_string("store.path", "fewrec.db", "SQLite file of the service's store");
  auto so = store::SqliteOptions::from_config(config);
  const std::string categories_column = config.get_string(
      "import.categories", "genres", "item tag column that becomes the items' categories (store import)");
  const std::string type = config.get_string(
      "import.type", "", "feedback type of imported interactions (empty: the dataset's event type, else `rating`)");
  config.check_all_used();
  core::StderrMonitor monitor(g_serve.common.quiet);
  const auto t0 = std::chrono::steady_clock::now();
  auto ds = load_data(run, monitor);
  auto st = store::open_sqlite_store(path, so);
  const auto& cat = ds.catalogue();

  std::vector<store::UserRecord> users(static_cast<size_t>(ds.num_users()));
  for (int32_t u = 0; u < ds.num_users(); ++u) {
    auto& rec = users[static_cast<size_t>(u)];
    rec.id = cat.users.id(u);
    for (const auto& col : cat.user_features.columns()) {
      if (col.kind == data::FeatureKind::kTags) {
        for (int32_t t : col.tags_of(u)) rec.labels.push_back(col.name + ":" + col.vocab.id(t));
      } else if (auto v = scalar_value(col, u)) {
        rec.attributes[col.name] = std::move(*v);
      }
    }
  }
  st->upsert_users(users);

  std::vector<store::ItemRecord> items(static_cast<size_t>(ds.num_items()));
  for (int32_t i = 0; i < ds.num_items(); ++i) {
    auto& rec = items[static_cast<size_t>(i)];
    rec.id = cat.items.id(i);
    for (const auto& col : cat.item_features.columns()) {
      if (col.kind == data::FeatureKind::kTags) {
        for (int32_t t : col.tags_of(i))
          (col.name == categories_column ? rec.categories : rec.tags).push_back(col.vocab.id(t));
      } else if (auto v = scalar_value(col, i); v && col.kind == data::FeatureKind::kText) {
        rec.text = rec.text.empty() ? std::move(*v) : rec.text + ". " + *v;
      } else if (v) {
        rec.features[col.name] = std::move(*v);
      }
    }
  }
  st->upsert_items(items);

  int64_t inserted = 0;
  std::vector<store::FeedbackRecord> batch;
  constexpr size_t kBatch = 50000;
  core::ProgressScope progress(monitor, "import feedback", ds.num_interactions());
  for (int32_t u = 0; u < ds.num_users(); ++u) {
    const auto h = ds.history(u);
    for (size_t j = 0; j < h.size(); ++j) {
      store::FeedbackRecord e;
      e.user = cat.users.id(u);
      e.item = cat.items.id(h.items[j]);
      e.type = !type.empty() ? type
               : h.events[j] < cat.event_types.size() ? cat.event_types.id(h.events[j])
                                                      : std::string("rating");
      if (e.type.empty()) e.type = "rating";
      e.value = h.values[j];
      e.timestamp = h.timestamps[j];
      batch.push_back(std::move(e));
      if (batch.size() == kBatch) {
        inserted += st->insert_feedback(batch);
        progress.advance(static_cast<int64_t>(batch.size()));
        batch.clear();
      }
    }
  }
  inserted += st->insert_feedback(batch);
  progress.advance(static_cast<int64_t>(batch.size()));
  progress.finish();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("imported %d users, %d items, %lld feedback events (%lld new) into %s in %.1f s\n", ds.num_users(),
              ds.num_items(), static_cast<long long>(ds.num_interactions()), static_cast<long long>(inserted),
              st->describe().c_str(), secs);
  write_json(g_serve.common.json_out, nlohmann::json{{"users", ds.num_users()},
                                                     {"items", ds.num_items()},
                                                     {"feedback", ds.num_interactions()},
                                                     {"inserted", inserted},
                                                     {"store", st->describe()},
                                                     {"seconds", secs}});
  return 0;
}

}  // namespace

void probe_serve_options(core::Config& config) {
  serve::ServiceOptions::from_config(config);
  serve::HttpOptions::from_config(config);
  config.get_string("import.categories", "genres", "item tag column that becomes the items' categories (store import)");
  config.get_string("import.type", "",
                    "feedback type of imported interactions (empty: the dataset's event type, else `rating`)");
}

void register_serve_commands(CLI::App& app) {
  auto* serve = app.add_subcommand(
      "serve", "run the recommendation service (HTTP JSON API) on the store at store.path; SIGTERM drains and exits");
  add_common(serve, g_serve.common, false);
  set_handler(serve, cmd_serve);

  auto* store_cmd = app.add_subcommand("store", "the service's store");
  store_cmd->require_subcommand(1);
  auto* import = store_cmd->add_subcommand(
      "import", "load the configured data (data.*) into the store at store.path: users, items, feedback");
  add_common(import, g_serve.common);
  set_handler(import, cmd_store_import);
}

}  // namespace fewrec::cli
