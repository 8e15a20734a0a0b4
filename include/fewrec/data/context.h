// UserContext: the one input of every recommendation. A known user's context
// comes from the dataset; a new user's from the request.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "fewrec/data/dataset.h"

namespace fewrec::data {

struct Event {
  ItemIndex item = 0;
  int64_t timestamp = 0;
  float value = 1.0f;
  EventType event = 0;
  float weight = 1.0f;
};

struct UserFeatures {
  std::map<std::string, std::string> categorical;
  std::map<std::string, float> numeric;
  std::map<std::string, std::vector<std::string>> tags;
  std::map<std::string, std::string> text;
  bool empty() const { return categorical.empty() && numeric.empty() && tags.empty() && text.empty(); }
};

struct UserContext {
  // Set when the user is in the training data (models may use their learned
  // per-user parameters); unset for a new user.
  std::optional<UserIndex> user;
  std::vector<Event> history;  // time-ordered
  UserFeatures features;

  // Items of the history (in order, duplicates kept).
  std::vector<ItemIndex> history_items() const;
};

// Context of `user` from `ds`: its history in ds plus its feature row.
// known=false drops the user index (treat as a new user with this history).
UserContext context_from_dataset(const Dataset& ds, UserIndex user, bool known = true);
// Feature row of a user as a UserFeatures map.
UserFeatures user_features_of(const Catalogue& catalogue, UserIndex user);

}  // namespace fewrec::data
