// The parts of the Store interface shared by every implementation.
#include "fewrec/store/store.h"

#include "fewrec/core/error.h"

namespace fewrec::store {

int64_t Store::insert_feedback(std::span<const FeedbackRecord> events) {
  const std::span<const FeedbackRecord> one[1] = {events};
  const std::vector<int64_t> counts = insert_feedback_groups(one);
  FEWREC_ASSERT(counts.size() == 1);
  return counts[0];
}

void Store::for_each_feedback(const std::function<void(const FeedbackRecord&)>& fn,
                              int64_t since) const {
  StoreScan s;
  s.feedback = fn;
  s.feedback_since = since;
  scan(s);
}

}  // namespace fewrec::store
