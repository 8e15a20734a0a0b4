// Synthetic data with planted structure. See the header for what is planted.
//
// Generation, in order (each part draws from its own derived seed stream, so
// changing e.g. the number of users does not reshuffle the items):
//   1. topic centres in R^dim (orthogonal when topics <= dim), norm kCentreNorm;
//   2. items: balanced topic assignment, optional secondary topic, factor
//      v = c_topic + kSecondaryWeight * c_secondary + noise * N(0, I),
//      log-Zipf popularity bias over a random rank, year, title, successor
//      (a random cycle through the items of the topic);
//   3. users: main topic plus 0-2 minor topics, factor = weighted centres +
//      noise * N(0, I), a drift topic, categorical attributes drawn from a
//      topic-specific preferred value with probability kAttributeAffinity;
//   4. interactions per user (independent stream per user): history length
//      min + exponential, then step by step either the successor of the
//      previous item (probability sequential_prob, when unseen) or a draw from
//      softmax(u(t) . v / temperature + bias) over unseen items, where u(t)
//      moves linearly toward the drift topic's centre (weight drift * t).
//
// The softmax draw is sampling-importance-resampling: candidates come from
// q(i) ∝ exp(u . c_topic(i) / T + bias_i) (topic by its total weight, then the
// item by an alias table of popularity inside the topic), and one unseen
// candidate is kept with probability ∝ p/q = exp(u . (v_i - c_topic(i)) / T).
// The number of candidates grows with the spread of p/q (8 at the defaults, up
// to 64 for noisy or cold settings). It is approximate: at the defaults the
// first choices are within 0.07 total variation of the exact softmax (the
// multinomial noise of the measurement alone is 0.05; the topic-level proposal
// alone would be 0.27) — see the FirstChoicesFollowTheExactSoftmax test. It
// costs O(topics + candidates * dim) per interaction instead of a scan of the
// catalogue; when every candidate was already seen for many rounds it falls
// back to an exact scan over the unseen items.
#include "fewrec/data/synthetic.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string_view>

#include "fewrec/core/config.h"
#include "fewrec/core/error.h"
#include "fewrec/core/rng.h"
#include "fewrec/core/threads.h"

namespace fewrec::data {
namespace {

struct TopicSpec {
  const char* name;
  const char* occupation;  // the occupation users of this topic lean to
  const char* words;       // space-separated title words
};

// Common English words (every one a whole word of the uncased BERT vocabulary,
// and so of GloVe 6B), no word shared between two topics.
constexpr TopicSpec kTopics[] = {
    {"sports", "athlete",
     "football soccer team match goal league player coach stadium season score ball "
     "championship tournament referee basketball tennis baseball fans trophy"},
    {"music", "musician",
     "guitar song band album concert piano singer melody rhythm drums jazz orchestra "
     "lyrics chorus violin rock stage tour radio blues"},
    {"food", "chef",
     "kitchen recipe chef bread cheese soup dinner cake wine pasta restaurant flavor spice "
     "chocolate coffee breakfast meat sugar feast baking"},
    {"space", "engineer",
     "planet star galaxy rocket astronaut moon orbit mars universe telescope comet asteroid "
     "alien solar cosmic launch gravity satellite nebula spaceship"},
    {"war", "soldier",
     "soldier army battle enemy weapon tank siege invasion navy fleet rifle troops command "
     "front conflict bomb regiment fortress general sniper"},
    {"romance", "writer",
     "love heart kiss wedding bride lover passion romance desire marriage embrace valentine "
     "romantic sweetheart honeymoon affair promise roses couple darling"},
    {"crime", "lawyer",
     "detective murder police thief robbery gang killer prison crime gun evidence witness "
     "suspect criminal mafia corruption investigation trial jury cop"},
    {"science", "scientist",
     "laboratory experiment theory physics chemistry molecule atom scientist research quantum "
     "energy discovery formula biology genetics evolution particle equation microscope "
     "hypothesis"},
    {"travel", "sales",
     "journey voyage adventure island passport hotel beach highway map train flight luggage "
     "tourist vacation cruise explorer airport border trip compass"},
    {"nature", "farmer",
     "forest river mountain ocean tree wolf bird flower wildlife lake rain storm valley jungle "
     "animal bear eagle meadow leaf snow"},
    {"history", "teacher",
     "ancient queen king emperor castle dynasty revolution medieval pharaoh ruins throne "
     "monarchy century knight temple chronicle civilization heritage empire colonial"},
    {"technology", "programmer",
     "computer software robot internet network digital machine code algorithm device "
     "smartphone virtual cyber hacker chip silicon automation electronic server browser"},
    {"children", "student",
     "toy puppy kitten playground teddy bunny balloon cartoon candy picnic nursery birthday "
     "doll lullaby circus pony rainbow kids school giggle"},
    {"medicine", "doctor",
     "doctor hospital nurse surgery patient disease virus vaccine cure clinic fever pill "
     "therapy diagnosis cancer infection surgeon pharmacy emergency health"},
    {"fantasy", "artist",
     "dragon wizard magic spell elf witch potion wand prophecy quest sorcerer enchanted fairy "
     "unicorn giant dwarf realm spirit curse myth"},
    {"horror", "clerk",
     "ghost haunted vampire zombie monster nightmare demon blood fear scream graveyard shadow "
     "creature skeleton coffin evil terror darkness horror werewolf"},
    {"business", "manager",
     "money bank market stock trade profit company investor economy wealth business deal "
     "fortune price tax budget salary office boss merger"},
    {"western", "retired",
     "cowboy ranch horse sheriff saloon outlaw desert frontier cattle gold rodeo wagon canyon "
     "prairie bandit revolver railroad posse duel mustang"},
};

// Words any title may use (about one title word in five).
constexpr const char* kGeneralWords =
    "the night story last return day first secret great little new old life world time dark "
    "golden lost home long";

constexpr const char* kAgeGroups[] = {"under 18", "18-24", "25-34", "35-44",
                                      "45-54",    "55-64", "65+"};
constexpr const char* kRegions[] = {"north",   "south", "east",      "west",
                                    "central", "coast", "mountains", "islands"};
// Occupations: the topics' ones plus a few no topic prefers.
constexpr const char* kExtraOccupations[] = {"homemaker", "unemployed", "other"};

constexpr double kCentreNorm = 1.4;         // length of a topic centre
constexpr double kSecondaryWeight = 0.3;    // weight of an item's secondary topic
constexpr double kSecondaryProb = 0.25;     // chance an item has a secondary topic
constexpr double kTopicWordProb = 0.8;      // chance a title word comes from the topic
constexpr double kAttributeAffinity = 0.6;  // chance an attribute takes the topic's value
// SIR candidates per softmax draw: about 4 exp(s^2), s^2 the variance of the
// log importance weight (|u| noise / T)^2, within [kMinCandidates, kMaxCandidates].
constexpr int kMinCandidates = 8;
constexpr int kMaxCandidates = 64;
constexpr int kRoundsBeforeScan = 16;           // all-seen rounds before the exact scan
constexpr int64_t kEpoch = 1577836800;          // 2020-01-01T00:00:00Z
constexpr int64_t kWindow = 3LL * 365 * 86400;  // users start within three years
constexpr double kMeanGap = 86400.0;            // mean seconds between a user's events
constexpr double kRatingNoise = 0.5;            // rating noise, in affinity standard deviations
// Share of ratings below 2, 3, 4, 5 (MovieLens-like 6/11/27/34/22 %).
constexpr double kRatingQuantiles[] = {0.06, 0.17, 0.44, 0.78};

// Seed streams.
enum Stream : uint64_t { kCentres = 1, kItems, kUsers, kPreferences, kInteractions, kRatings };

std::vector<std::string> split_words(std::string_view text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(' ', pos);
    if (end == std::string_view::npos) end = text.size();
    if (end > pos) out.emplace_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

const std::vector<std::string>& general_words() {
  static const std::vector<std::string> words = split_words(kGeneralWords);
  return words;
}

std::vector<std::string> occupations() {
  std::vector<std::string> out;
  for (const auto& t : kTopics) out.emplace_back(t.occupation);
  for (const char* o : kExtraOccupations) out.emplace_back(o);
  return out;
}

float dotf(const float* a, const float* b, int n) {
  float s = 0;
  for (int k = 0; k < n; ++k) s += a[k] * b[k];
  return s;
}

double dot(const float* a, const float* b, int n) {
  double s = 0;
  for (int k = 0; k < n; ++k) s += static_cast<double>(a[k]) * b[k];
  return s;
}

// Walker/Vose alias table over `values` with non-negative weights; each
// column holds its value, its alias' value and the threshold in one entry
// (one cache line per draw).
struct AliasTable {
  struct Entry {
    float prob;
    int32_t value;
    int32_t alias;
  };
  std::vector<Entry> entries;

  void build(const std::vector<int32_t>& values, const std::vector<double>& w) {
    const size_t n = values.size();
    entries.resize(n);
    for (size_t i = 0; i < n; ++i) entries[i] = {1.0f, values[i], values[i]};
    double total = std::accumulate(w.begin(), w.end(), 0.0);
    if (n == 0 || total <= 0) return;
    std::vector<double> scaled(n);
    std::vector<int32_t> small, large;
    for (size_t i = 0; i < n; ++i) {
      scaled[i] = w[i] * static_cast<double>(n) / total;
      (scaled[i] < 1.0 ? small : large).push_back(static_cast<int32_t>(i));
    }
    while (!small.empty() && !large.empty()) {
      int32_t s = small.back(), l = large.back();
      small.pop_back();
      entries[s].prob = static_cast<float>(scaled[s]);
      entries[s].alias = values[l];
      scaled[l] -= 1.0 - scaled[s];
      if (scaled[l] < 1.0) {
        large.pop_back();
        small.push_back(l);
      }
    }
  }

  bool empty() const { return entries.empty(); }

  // From 32 uniform bits: x * n's integer part picks the column, its
  // fractional part is the coin.
  int32_t sample(uint32_t bits) const {
    const uint64_t m = static_cast<uint64_t>(bits) * entries.size();
    const Entry& e = entries[m >> 32];
    const float coin = static_cast<float>(m & 0xffffffffULL) * 0x1.0p-32f;
    const int32_t keep = -static_cast<int32_t>(coin < e.prob);  // branch-free: all ones or zero
    return (e.value & keep) | (e.alias & ~keep);
  }
};

template <class T>
void shuffle(std::vector<T>& v, core::Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[core::uniform_index(rng, i)]);
}

// Exponential variate with the given mean.
double exponential(core::Rng& rng, double mean) {
  return -std::log(1.0 - core::uniform01(rng)) * mean;
}

void validate(const SyntheticOptions& o) {
  FEWREC_CHECK(!o.behaviour || o.ratings, kInvalidArgument,
               "synthetic data: `data.synthetic.behaviour = true` needs `data.synthetic.ratings = true` (ratings drive "
               "the behaviour)");
  const auto max_topics = static_cast<int32_t>(std::size(kTopics));
  FEWREC_CHECK(o.num_users >= 1, kInvalidArgument,
               "synthetic data: users (data.synthetic.users) must be at least 1, got {}",
               o.num_users);
  FEWREC_CHECK(o.num_items >= 1, kInvalidArgument,
               "synthetic data: items (data.synthetic.items) must be at least 1, got {}",
               o.num_items);
  FEWREC_CHECK(o.num_topics >= 1 && o.num_topics <= max_topics, kInvalidArgument,
               "synthetic data: topics (data.synthetic.topics) must be in [1, {}] (the built-in "
               "topic lists), got {}",
               max_topics, o.num_topics);
  FEWREC_CHECK(o.dim >= 1 && o.dim <= 4096, kInvalidArgument,
               "synthetic data: dim (data.synthetic.dim) must be in [1, 4096], got {}", o.dim);
  FEWREC_CHECK(o.min_interactions >= 0 && o.min_interactions <= o.num_items, kInvalidArgument,
               "synthetic data: min_interactions (data.synthetic.min_interactions) must be in [0, "
               "items = {}], got {}",
               o.num_items, o.min_interactions);
  FEWREC_CHECK(std::isfinite(o.mean_interactions) && o.mean_interactions >= 0, kInvalidArgument,
               "synthetic data: mean_interactions (data.synthetic.mean_interactions) must be >= 0, "
               "got {}",
               o.mean_interactions);
  FEWREC_CHECK(
      std::isfinite(o.popularity_skew) && o.popularity_skew >= 0, kInvalidArgument,
      "synthetic data: popularity_skew (data.synthetic.popularity_skew) must be >= 0, got {}",
      o.popularity_skew);
  FEWREC_CHECK(std::isfinite(o.noise) && o.noise >= 0, kInvalidArgument,
               "synthetic data: noise (data.synthetic.noise) must be >= 0, got {}", o.noise);
  FEWREC_CHECK(
      o.sequential_prob >= 0 && o.sequential_prob <= 1, kInvalidArgument,
      "synthetic data: sequential_prob (data.synthetic.sequential_prob) must be in [0, 1], "
      "got {}",
      o.sequential_prob);
  FEWREC_CHECK(o.drift >= 0 && o.drift <= 1, kInvalidArgument,
               "synthetic data: drift (data.synthetic.drift) must be in [0, 1], got {}", o.drift);
  FEWREC_CHECK(std::isfinite(o.temperature) && o.temperature > 0, kInvalidArgument,
               "synthetic data: temperature (data.synthetic.temperature) must be > 0, got {}",
               o.temperature);
}

// Random orthonormal directions (Gram-Schmidt) while they fit, random unit
// vectors after that; all scaled to kCentreNorm. Row-major [topics, dim].
std::vector<float> make_centres(int32_t topics, int32_t dim, core::Rng& rng) {
  std::vector<double> c(static_cast<size_t>(topics) * dim);
  for (int32_t t = 0; t < topics; ++t) {
    double* row = c.data() + static_cast<size_t>(t) * dim;
    for (int32_t k = 0; k < dim; ++k) row[k] = core::normal01(rng);
    if (t < dim) {
      for (int32_t s = 0; s < t; ++s) {
        const double* prev = c.data() + static_cast<size_t>(s) * dim;
        double d = 0;
        for (int32_t k = 0; k < dim; ++k) d += row[k] * prev[k];
        for (int32_t k = 0; k < dim; ++k) row[k] -= d * prev[k];
      }
    }
    double norm = 0;
    for (int32_t k = 0; k < dim; ++k) norm += row[k] * row[k];
    norm = std::sqrt(norm);
    if (norm < 1e-12) {  // practically impossible; keep a valid direction
      row[t % dim] = 1.0;
      norm = 1.0;
    }
    for (int32_t k = 0; k < dim; ++k) row[k] /= norm;
  }
  std::vector<float> out(c.size());
  for (size_t i = 0; i < c.size(); ++i) out[i] = static_cast<float>(c[i] * kCentreNorm);
  return out;
}

std::string capitalised(const std::string& w) {
  std::string s = w;
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

// 2-5 distinct words: kTopicWordProb from the topic (a quarter of those from
// the secondary topic when there is one), the rest general words.
std::string make_title(const std::vector<std::string>& words,
                       const std::vector<std::string>* secondary, core::Rng& rng) {
  const auto& general = general_words();
  const int n = 2 + static_cast<int>(core::uniform_index(rng, 4));
  std::vector<const std::string*> chosen;
  int topic_words = 0;
  for (int attempt = 0; static_cast<int>(chosen.size()) < n && attempt < 50; ++attempt) {
    const std::vector<std::string>* list;
    const double r = core::uniform01(rng);
    if (r < kTopicWordProb)
      list = (secondary && core::uniform01(rng) < 0.25) ? secondary : &words;
    else
      list = &general;
    const std::string* w = &(*list)[core::uniform_index(rng, list->size())];
    if (std::find(chosen.begin(), chosen.end(), w) != chosen.end()) continue;
    if (list != &general) ++topic_words;
    chosen.push_back(w);
  }
  if (topic_words == 0) chosen[0] = &words[core::uniform_index(rng, words.size())];
  std::string title;
  for (const std::string* w : chosen) {
    if (!title.empty()) title += ' ';
    title += capitalised(*w);
  }
  return title;
}

// Everything drawn before the interactions; read-only while users are
// generated. The sampler's per-item arrays are indexed by *position*: items
// sorted by topic, so the items one user draws from sit close in memory.
struct World {
  int32_t topics = 0, dim = 0, items = 0;
  std::vector<float> centres;           // [topics, dim]
  std::vector<int32_t> item_topic;      // per item
  std::vector<int32_t> item_secondary;  // per item, -1 none
  std::vector<float> item_factors;      // [items, dim]
  std::vector<float> bias;              // log-Zipf popularity bias per item
  std::vector<int32_t> successor;       // planted successor per item

  std::vector<ItemIndex> item_at;       // position -> item
  std::vector<int32_t> topic_at;        // position -> topic
  std::vector<float> residual_at;       // position -> v - c_topic, [items, dim]
  std::vector<int32_t> successor_at;    // position -> position of the successor
  std::vector<AliasTable> topic_alias;  // per topic: positions by popularity
  std::vector<double> topic_log_mass;   // log sum exp(bias) per topic, -inf when empty
};

struct UserPlan {
  std::vector<float> factor;  // dim
  int32_t main_topic = 0;
  int32_t drift_topic = 0;
};

struct Event {
  ItemIndex item;
  int64_t timestamp;
  float affinity;  // u(t) . v at the time of the event
  float noise;     // rating noise draw
};

// Interactions of one user. `seen` is a scratch array over positions, all
// zero on entry and on return.
void generate_user(const World& w, const SyntheticOptions& o, const UserPlan& plan, int32_t user,
                   std::vector<uint8_t>& seen, std::vector<Event>& out) {
  core::Rng rng(
      core::derive_seed(core::derive_seed(o.seed, kInteractions), static_cast<uint64_t>(user)));
  const int32_t dim = w.dim, topics = w.topics;
  const double inv_t = 1.0 / o.temperature;
  const auto inv_tf = static_cast<float>(inv_t);

  int64_t n = o.min_interactions;
  const double extra = o.mean_interactions - o.min_interactions;
  if (extra > 0) n += static_cast<int64_t>(std::floor(exponential(rng, extra + 0.5)));
  n = std::min<int64_t>(n, w.items);
  out.reserve(static_cast<size_t>(n));

  int64_t ts = kEpoch + static_cast<int64_t>(core::uniform01(rng) * static_cast<double>(kWindow));

  // u(a) = (1 - a) u0 + a c_drift, so u(a) . c_t is a blend of two dot products.
  const float* u0 = plan.factor.data();
  const float* cd = w.centres.data() + static_cast<size_t>(plan.drift_topic) * dim;
  std::vector<double> u0_c(topics), cd_c(topics), u_c(topics);
  for (int32_t t = 0; t < topics; ++t) {
    const float* c = w.centres.data() + static_cast<size_t>(t) * dim;
    u0_c[t] = dot(u0, c, dim);
    cd_c[t] = dot(cd, c, dim);
  }
  std::vector<float> u(dim);
  std::vector<double> topic_cum(topics);  // cumulative topic proposal weights at drift topic_a
  double acc = 0, topic_a = -1;
  double u_norm2 = 0;
  for (int32_t k = 0; k < dim; ++k) u_norm2 += static_cast<double>(u0[k]) * u0[k];
  const double log_weight_var = u_norm2 * o.noise * o.noise * inv_t * inv_t;
  const int candidates =
      static_cast<int>(std::clamp(std::ceil(4.0 * std::exp(std::min(log_weight_var, 10.0))),
                                  double{kMinCandidates}, double{kMaxCandidates}));
  int32_t cand[kMaxCandidates];
  float cand_w[kMaxCandidates];
  std::vector<int32_t> chosen_positions;
  chosen_positions.reserve(static_cast<size_t>(n));
  int32_t prev = -1;

  for (int64_t j = 0; j < n; ++j) {
    const double tau = n > 1 ? static_cast<double>(j) / static_cast<double>(n - 1) : 0.0;
    const double a = o.drift * tau;
    if (a != topic_a) {
      for (int32_t k = 0; k < dim; ++k) u[k] = static_cast<float>((1 - a) * u0[k] + a * cd[k]);
      // Proposal over topics: exp(u . c_t / T) * sum_{i in t} exp(bias_i).
      double mx = -std::numeric_limits<double>::infinity();
      for (int32_t t = 0; t < topics; ++t) {
        u_c[t] = (1 - a) * u0_c[t] + a * cd_c[t];
        topic_cum[t] = u_c[t] * inv_t + w.topic_log_mass[t];
        mx = std::max(mx, topic_cum[t]);
      }
      acc = 0;
      for (int32_t t = 0; t < topics; ++t) {
        acc += std::exp(topic_cum[t] - mx);  // exp(-inf) = 0 for empty topics
        topic_cum[t] = acc;
      }
      topic_a = a;
    }

    int32_t chosen = -1;  // a position
    if (prev >= 0 && core::uniform01(rng) < o.sequential_prob) {
      const int32_t s = w.successor_at[prev];
      if (!seen[s]) chosen = s;
    }
    for (int round = 0; round < kRoundsBeforeScan && chosen < 0; ++round) {
      // Draw all candidates first (prefetching their residuals), then weigh
      // them: the memory loads overlap.
      int nc = 0;
      for (int c = 0; c < candidates; ++c) {
        // One draw per candidate: high half picks the topic, low half the item.
        const uint64_t x = rng();
        const double r = static_cast<double>(x >> 32) * 0x1.0p-32 * acc;
        int32_t t = 0;
        while (t < topics - 1 && topic_cum[t] <= r) ++t;
        const AliasTable& alias = w.topic_alias[t];
        if (alias.empty()) continue;
        cand[nc] = alias.sample(static_cast<uint32_t>(x));
        __builtin_prefetch(w.residual_at.data() + static_cast<size_t>(cand[nc]) * dim);
        ++nc;
      }
      float total = 0;
      for (int c = 0; c < nc; ++c) {
        const int32_t pos = cand[c];
        cand_w[c] =
            seen[pos] ? 0.0f
                      : std::exp(dotf(u.data(),
                                      w.residual_at.data() + static_cast<size_t>(pos) * dim, dim) *
                                 inv_tf);
        total += cand_w[c];
      }
      if (total <= 0) continue;
      float r = static_cast<float>(core::uniform01(rng)) * total;
      for (int c = 0; c < nc; ++c) {
        if (cand_w[c] <= 0) continue;
        chosen = cand[c];
        r -= cand_w[c];
        if (r < 0) break;
      }
    }
    if (chosen < 0) {
      // Exact softmax over the unseen items (rare: the user has exhausted
      // most of their likely items).
      std::vector<double> weight(static_cast<size_t>(w.items), 0.0);
      double best = -std::numeric_limits<double>::infinity();
      for (int32_t p = 0; p < w.items; ++p) {
        if (seen[p]) continue;
        const int32_t t = w.topic_at[p];
        weight[p] =
            (u_c[t] + dot(u.data(), w.residual_at.data() + static_cast<size_t>(p) * dim, dim)) *
                inv_t +
            w.bias[w.item_at[p]];
        best = std::max(best, weight[p]);
      }
      double total = 0;
      for (int32_t p = 0; p < w.items; ++p)
        total += weight[p] = seen[p] ? 0.0 : std::exp(weight[p] - best);
      double r = core::uniform01(rng) * total;
      for (int32_t p = 0; p < w.items; ++p) {
        if (seen[p]) continue;
        chosen = p;
        r -= weight[p];
        if (r < 0) break;
      }
    }
    FEWREC_ASSERT(chosen >= 0 && !seen[chosen]);
    seen[chosen] = 1;
    chosen_positions.push_back(chosen);
    const auto affinity = static_cast<float>(
        u_c[w.topic_at[chosen]] +
        dot(u.data(), w.residual_at.data() + static_cast<size_t>(chosen) * dim, dim));
    const float noise = o.ratings ? static_cast<float>(core::normal01(rng)) : 0.0f;
    out.push_back({w.item_at[chosen], ts, affinity, noise});
    ts += 1 + static_cast<int64_t>(exponential(rng, kMeanGap));
    prev = chosen;
  }
  for (int32_t p : chosen_positions) seen[p] = 0;
}

}  // namespace

const std::vector<std::pair<std::string, std::vector<std::string>>>& synthetic_topics() {
  static const auto topics = [] {
    std::vector<std::pair<std::string, std::vector<std::string>>> out;
    for (const auto& t : kTopics) out.emplace_back(t.name, split_words(t.words));
    return out;
  }();
  return topics;
}

const std::vector<std::string>& synthetic_general_words() { return general_words(); }

SyntheticOptions SyntheticOptions::from_config(core::Config& config) {
  SyntheticOptions o;
  auto get_i32 = [&](const char* key, int32_t def, const char* doc) {
    const int64_t v = config.get_int(key, def, doc);
    FEWREC_CHECK(
        v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max(),
        kInvalidArgument, "config key `{}`: {} does not fit a 32-bit integer", key, v);
    return static_cast<int32_t>(v);
  };
  o.num_users = get_i32("data.synthetic.users", o.num_users, "number of synthetic users");
  o.num_items = get_i32("data.synthetic.items", o.num_items, "number of synthetic items");
  o.num_topics = get_i32("data.synthetic.topics", o.num_topics,
                         "number of latent topics (at most the 18 built-in topic word lists)");
  o.dim = get_i32("data.synthetic.dim", o.dim, "latent factor dimension of the planted structure");
  o.mean_interactions = config.get_double("data.synthetic.mean_interactions", o.mean_interactions,
                                          "mean number of interactions per user");
  o.min_interactions = get_i32("data.synthetic.min_interactions", o.min_interactions,
                               "minimum number of interactions per user");
  o.popularity_skew = config.get_double("data.synthetic.popularity_skew", o.popularity_skew,
                                        "Zipf exponent of the item popularity bias (0 = none)");
  o.noise = config.get_double("data.synthetic.noise", o.noise,
                              "spread of item and user factors around their topic centres");
  o.sequential_prob = config.get_double(
      "data.synthetic.sequential_prob", o.sequential_prob,
      "probability that the next item is the planted successor of the previous one");
  o.drift = config.get_double("data.synthetic.drift", o.drift,
                              "how far a user's taste moves toward a second topic over their "
                              "timeline (0..1)");
  o.temperature =
      config.get_double("data.synthetic.temperature", o.temperature,
                        "softmax temperature of user-item affinities (lower = sharper)");
  o.ratings =
      config.get_bool("data.synthetic.ratings", o.ratings,
                      "values are 1..5 ratings correlated with affinity (false: implicit, 1)");
  o.behaviour = config.get_bool(
      "data.synthetic.behaviour", o.behaviour,
      "events are views (value = completion, weight = dwell seconds) driven by the ratings, plus the rating itself "
      "on a share of the pairs (for the label model)");
  o.rated_fraction = config.get_double("data.synthetic.rated_fraction", o.rated_fraction,
                                       "behaviour: share of pairs that also carry their rating event");
  o.seed = static_cast<uint64_t>(config.get_int("data.synthetic.seed", static_cast<int64_t>(o.seed),
                                                "random seed of the synthetic data"));
  return o;
}

Dataset make_synthetic(const SyntheticOptions& options) { return make_synthetic(options, nullptr); }

Dataset make_synthetic(const SyntheticOptions& o, SyntheticTruth* truth) {
  validate(o);
  const auto& topic_words = synthetic_topics();
  const int32_t T = o.num_topics, D = o.dim, I = o.num_items, U = o.num_users;

  World w;
  w.topics = T;
  w.dim = D;
  w.items = I;
  {
    core::Rng rng(core::derive_seed(o.seed, kCentres));
    w.centres = make_centres(T, D, rng);
  }

  DatasetBuilder builder;
  for (int32_t u = 0; u < U; ++u) builder.user("u" + std::to_string(u));
  for (int32_t i = 0; i < I; ++i) builder.item("i" + std::to_string(i));

  // Items.
  {
    core::Rng rng(core::derive_seed(o.seed, kItems));
    w.item_topic.resize(I);
    for (int32_t i = 0; i < I; ++i) w.item_topic[i] = i % T;
    shuffle(w.item_topic, rng);
    w.item_secondary.assign(I, -1);
    w.item_factors.resize(static_cast<size_t>(I) * D);
    w.bias.resize(I);
    std::vector<int32_t> rank(I);
    std::iota(rank.begin(), rank.end(), 0);
    shuffle(rank, rng);
    auto& features = builder.item_features();
    for (int32_t i = 0; i < I; ++i) {
      const int32_t t = w.item_topic[i];
      int32_t s = -1;
      if (T > 1 && core::uniform01(rng) < kSecondaryProb) {
        s = static_cast<int32_t>(core::uniform_index(rng, static_cast<uint64_t>(T - 1)));
        if (s >= t) ++s;
      }
      w.item_secondary[i] = s;
      const float* ct = w.centres.data() + static_cast<size_t>(t) * D;
      float* v = w.item_factors.data() + static_cast<size_t>(i) * D;
      for (int32_t k = 0; k < D; ++k) {
        double x = o.noise * core::normal01(rng);
        if (s >= 0) x += kSecondaryWeight * w.centres[static_cast<size_t>(s) * D + k];
        v[k] = static_cast<float>(ct[k] + x);
      }
      w.bias[i] = static_cast<float>(-o.popularity_skew * std::log1p(static_cast<double>(rank[i])));
      // Years skew recent: 2023 minus an exponential with mean 12, at least 1950.
      const double year = std::max(1950.0, 2023.0 - std::floor(exponential(rng, 12.0)));
      const auto& tw = topic_words[static_cast<size_t>(t)];
      features.set_text(
          i, "title",
          make_title(tw.second, s >= 0 ? &topic_words[static_cast<size_t>(s)].second : nullptr,
                     rng));
      features.add_tag(i, "genres", tw.first);
      if (s >= 0) features.add_tag(i, "genres", topic_words[static_cast<size_t>(s)].first);
      features.set_categorical(i, "topic", tw.first);
      features.set_numeric(i, "year", static_cast<float>(year));
    }
    // Positions: items sorted by topic (stable, so by id inside a topic).
    w.item_at.resize(I);
    std::iota(w.item_at.begin(), w.item_at.end(), 0);
    std::stable_sort(w.item_at.begin(), w.item_at.end(),
                     [&](ItemIndex x, ItemIndex y) { return w.item_topic[x] < w.item_topic[y]; });
    w.topic_at.resize(I);
    w.residual_at.resize(static_cast<size_t>(I) * D);
    for (int32_t p = 0; p < I; ++p) {
      const ItemIndex i = w.item_at[p];
      const int32_t t = w.item_topic[i];
      w.topic_at[p] = t;
      for (int32_t k = 0; k < D; ++k)
        w.residual_at[static_cast<size_t>(p) * D + k] =
            w.item_factors[static_cast<size_t>(i) * D + k] -
            w.centres[static_cast<size_t>(t) * D + k];
    }
    w.topic_alias.resize(T);
    w.topic_log_mass.assign(T, -std::numeric_limits<double>::infinity());
    w.successor.resize(I);
    w.successor_at.resize(I);
    for (int32_t p = 0, t = 0; t < T; ++t) {
      std::vector<int32_t> positions;
      std::vector<double> weights;
      double mass = 0;
      for (; p < I && w.topic_at[p] == t; ++p) {
        positions.push_back(p);
        weights.push_back(std::exp(static_cast<double>(w.bias[w.item_at[p]])));
        mass += weights.back();
      }
      if (positions.empty()) continue;
      w.topic_alias[t].build(positions, weights);
      w.topic_log_mass[t] = std::log(mass);
      // The successor cycle: a random order of the topic's items.
      std::vector<int32_t> cycle = positions;
      shuffle(cycle, rng);
      for (size_t k = 0; k < cycle.size(); ++k) {
        const int32_t next = cycle[(k + 1) % cycle.size()];
        w.successor_at[cycle[k]] = next;
        w.successor[w.item_at[cycle[k]]] = w.item_at[next];
      }
    }
  }

  // Topic-specific preferred attribute values.
  const std::vector<std::string> occupation_values = occupations();
  std::vector<int32_t> pref_age(T), pref_region(T), pref_occupation(T);
  {
    core::Rng rng(core::derive_seed(o.seed, kPreferences));
    std::vector<int32_t> regions(std::size(kRegions));
    std::iota(regions.begin(), regions.end(), 0);
    shuffle(regions, rng);
    for (int32_t t = 0; t < T; ++t) {
      pref_region[t] = regions[static_cast<size_t>(t) % regions.size()];
      pref_age[t] = static_cast<int32_t>(core::uniform_index(rng, std::size(kAgeGroups)));
      pref_occupation[t] = t;  // kTopics[t].occupation
    }
  }

  // Users.
  std::vector<int32_t> non_empty;
  for (int32_t t = 0; t < T; ++t)
    if (!w.topic_alias[t].empty()) non_empty.push_back(t);
  std::vector<UserPlan> plans(U);
  {
    core::Rng rng(core::derive_seed(o.seed, kUsers));
    auto& features = builder.user_features();
    auto attribute = [&](int32_t preferred, size_t n) {
      if (core::uniform01(rng) < kAttributeAffinity) return static_cast<size_t>(preferred);
      return static_cast<size_t>(core::uniform_index(rng, n));
    };
    std::vector<double> mix(D);
    for (int32_t u = 0; u < U; ++u) {
      UserPlan& p = plans[u];
      p.main_topic = non_empty[core::uniform_index(rng, non_empty.size())];
      std::fill(mix.begin(), mix.end(), 0.0);
      auto add_topic = [&](int32_t t, double weight) {
        for (int32_t k = 0; k < D; ++k)
          mix[k] += weight * w.centres[static_cast<size_t>(t) * D + k];
      };
      add_topic(p.main_topic, 1.0);
      const int32_t minors = std::min<int32_t>(static_cast<int32_t>(core::uniform_index(rng, 3)),
                                               static_cast<int32_t>(non_empty.size()) - 1);
      std::vector<int32_t> used{p.main_topic};
      for (int32_t m = 0; m < minors; ++m) {
        int32_t t;
        do t = non_empty[core::uniform_index(rng, non_empty.size())];
        while (std::find(used.begin(), used.end(), t) != used.end());
        used.push_back(t);
        add_topic(t, 0.25 + 0.25 * core::uniform01(rng));
      }
      p.factor.resize(D);
      for (int32_t k = 0; k < D; ++k)
        p.factor[k] = static_cast<float>(mix[k] + o.noise * core::normal01(rng));
      p.drift_topic = p.main_topic;
      if (non_empty.size() > 1) {
        do p.drift_topic = non_empty[core::uniform_index(rng, non_empty.size())];
        while (p.drift_topic == p.main_topic);
      }
      features.set_categorical(
          u, "age", kAgeGroups[attribute(pref_age[p.main_topic], std::size(kAgeGroups))]);
      features.set_categorical(u, "region",
                               kRegions[attribute(pref_region[p.main_topic], std::size(kRegions))]);
      features.set_categorical(
          u, "occupation",
          occupation_values[attribute(pref_occupation[p.main_topic], occupation_values.size())]);
    }
  }

  // Interactions: independent stream per user, so the work splits over
  // threads without changing the result.
  std::vector<std::vector<Event>> events(U);
  {
    const int threads = U >= 2048 ? 0 : 1;
    const int workers = core::resolve_threads(threads);
    std::vector<std::vector<uint8_t>> seen(static_cast<size_t>(workers));
    core::parallel_for(
        0, U, threads,
        [&](int64_t begin, int64_t end, int worker) {
          auto& scratch = seen[static_cast<size_t>(worker)];
          if (scratch.empty()) scratch.assign(static_cast<size_t>(I), 0);
          for (int64_t u = begin; u < end; ++u)
            generate_user(w, o, plans[u], static_cast<int32_t>(u), scratch, events[u]);
        },
        256);
  }

  // Values: 1..5 from global quantiles of standardised affinity + noise.
  size_t total = 0;
  for (const auto& e : events) total += e.size();
  std::vector<float> values(total, 1.0f);
  if (o.ratings && total > 0) {
    double sum = 0, sq = 0;
    for (const auto& ev : events)
      for (const Event& e : ev) {
        sum += e.affinity;
        sq += static_cast<double>(e.affinity) * e.affinity;
      }
    const double mean = sum / static_cast<double>(total);
    const double sd = std::sqrt(std::max(1e-12, sq / static_cast<double>(total) - mean * mean));
    std::vector<float> score;
    score.reserve(total);
    for (const auto& ev : events)
      for (const Event& e : ev)
        score.push_back(static_cast<float>((e.affinity - mean) / sd + kRatingNoise * e.noise));
    std::vector<float> sorted = score;
    float cut[std::size(kRatingQuantiles)];
    for (size_t q = 0; q < std::size(kRatingQuantiles); ++q) {
      auto k = static_cast<size_t>(kRatingQuantiles[q] * static_cast<double>(total));
      k = std::min(k, total - 1);
      std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(k),
                       sorted.end());
      cut[q] = sorted[k];
    }
    for (size_t r = 0; r < total; ++r) {
      int rating = 1;
      for (float c : cut) rating += score[r] >= c ? 1 : 0;
      values[r] = static_cast<float>(rating);
    }
  }

  builder.reserve(total);
  size_t row = 0;
  for (int32_t u = 0; u < U; ++u)
    for (const Event& e : events[u]) builder.add(u, e.item, e.timestamp, values[row++]);

  if (truth) {
    truth->centres = w.centres;
    truth->item_topic = w.item_topic;
    truth->item_secondary_topic = w.item_secondary;
    truth->item_factors = w.item_factors;
    truth->item_bias = w.bias;
    truth->item_successor = w.successor;
    truth->user_main_topic.resize(U);
    truth->user_drift_topic.resize(U);
    truth->user_factors.resize(static_cast<size_t>(U) * D);
    for (int32_t u = 0; u < U; ++u) {
      truth->user_main_topic[u] = plans[u].main_topic;
      truth->user_drift_topic[u] = plans[u].drift_topic;
      std::copy(plans[u].factor.begin(), plans[u].factor.end(),
                truth->user_factors.begin() + static_cast<size_t>(u) * D);
    }
  }
  Dataset ds = std::move(builder).build("synthetic");
  if (o.behaviour) return make_behaviour_events(ds, o.rated_fraction, core::derive_seed(o.seed, 0xbe4a));
  return ds;
}

Dataset make_behaviour_events(const Dataset& rated, double rated_fraction, uint64_t seed) {
  FEWREC_CHECK(rated_fraction >= 0 && rated_fraction <= 1, kInvalidArgument,
               "synthetic data: rated_fraction (data.synthetic.rated_fraction) must be in [0, 1], got {}",
               rated_fraction);
  auto cat = std::make_shared<Catalogue>(rated.catalogue());
  const auto view = static_cast<EventType>(cat->event_types.add("view"));
  const auto rating = static_cast<EventType>(cat->event_types.add("rating"));
  constexpr int64_t kViewGap = 300;  // seconds between a pair's views
  std::vector<Interaction> out;
  out.reserve(static_cast<size_t>(rated.num_interactions()) * 3);
  for (UserIndex u = 0; u < rated.num_users(); ++u) {
    core::Rng rng(core::derive_seed(seed, static_cast<uint64_t>(u)));
    const double activity = 0.5 * core::normal01(rng);
    const double dwell_habit = 0.4 * core::normal01(rng);
    const auto h = rated.history(u);
    for (size_t k = 0; k < h.size(); ++k) {
      const double r = static_cast<double>(h.values[k]) - 3.0;
      // Poisson by multiplying uniforms (lambda stays small).
      const double lambda = std::min(30.0, std::exp(-0.4 + 0.45 * r + activity));
      int extra = 0;
      for (double prod = core::uniform01(rng), limit = std::exp(-lambda); prod > limit;
           prod *= core::uniform01(rng))
        ++extra;
      int64_t t = h.timestamps[k];
      for (int v = 0; v <= extra; ++v, t += kViewGap) {
        const double completion = 1.0 / (1.0 + std::exp(-(0.5 * r + core::normal01(rng))));
        const double dwell = std::exp(3.2 + 0.3 * r + dwell_habit + 0.9 * core::normal01(rng));
        out.push_back(Interaction{u, h.items[k], t, static_cast<float>(completion), view, static_cast<float>(dwell)});
      }
      if (core::uniform01(rng) < rated_fraction)
        out.push_back(Interaction{u, h.items[k], t, h.values[k], rating, 1.0f});
    }
  }
  return Dataset(std::move(cat), std::move(out), rated.name());
}

}  // namespace fewrec::data
