// Schema of the SQLite store and its migrations.
#pragma once

#include <string>

#include "sqlite_db.h"

namespace fewrec::store::detail {

// Brings the database behind `db` (the write connection, outside any
// transaction) to kSqliteSchemaVersion: checks that it is a fewrec store (or
// empty), refuses a newer schema, switches to WAL and applies the missing
// migrations in order inside one transaction. Returns the version found
// (0 for a new database).
int prepare_schema(Db& db);

}  // namespace fewrec::store::detail
