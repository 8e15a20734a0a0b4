// SqliteOptions from the config (one place for the store's keys).
#include "fewrec/core/config.h"
#include "fewrec/core/error.h"
#include "fewrec/store/store.h"

namespace fewrec::store {

namespace {

int int_key(core::Config& config, const char* key, int def, int min, const char* doc) {
  const int64_t v = config.get_int(key, def, doc);
  FEWREC_CHECK(v >= min && v <= 1000000000, kInvalidArgument,
               "config key `{}`: expected an integer from {} to 1000000000, got {}", key, min, v);
  return static_cast<int>(v);
}

}  // namespace

SqliteOptions SqliteOptions::from_config(core::Config& config) {
  SqliteOptions o;
  o.create_if_missing = config.get_bool("store.create_if_missing", o.create_if_missing,
                                        "create the SQLite store file when it does not exist");
  o.busy_timeout_ms = int_key(config, "store.busy_timeout_ms", o.busy_timeout_ms, 0,
                              "how long a write waits for another process's write lock (ms)");
  const std::string sync = config.get_string(
      "store.synchronous", "full",
      "full: acknowledged writes survive power loss; normal: survive a crash of the process only");
  FEWREC_CHECK(sync == "full" || sync == "normal", kInvalidArgument,
               "config key `store.synchronous`: expected `full` or `normal`, got `{}`", sync);
  o.synchronous_full = sync == "full";
  const std::string unknown = config.get_string(
      "store.unknown_ids", "create",
      "feedback naming an unknown user / item: create (insert an empty row) or reject");
  FEWREC_CHECK(unknown == "create" || unknown == "reject", kInvalidArgument,
               "config key `store.unknown_ids`: expected `create` or `reject`, got `{}`", unknown);
  o.unknown_ids = unknown == "create" ? UnknownIds::kCreate : UnknownIds::kReject;
  o.max_idle_readers = int_key(config, "store.max_idle_readers", o.max_idle_readers, 1,
                               "read connections of the SQLite store kept open for reuse");
  o.cache_mib = int_key(config, "store.cache_mib", o.cache_mib, 1,
                        "SQLite page cache per connection (MiB)");
  return o;
}

}  // namespace fewrec::store
