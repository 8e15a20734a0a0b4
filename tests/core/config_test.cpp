#include "fewrec/core/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "fewrec/core/error.h"

namespace fewrec::core {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Runs `fn`, expects a fewrec::Error with `code`, returns its message.
template <class Fn>
std::string error_of(Fn&& fn, ErrorCode code = ErrorCode::kInvalidArgument) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "unexpected exception type: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected fewrec::Error";
  return "";
}

constexpr const char* kToml = R"(
seed = 7
[data]
path = "ml-100k/u.data"
min_rating = 3.5
implicit = true
[split]
seed = 42
ratios = [0.8, 0.1, 0.1]
shots = [0, 1, 3]
[model]
name = "itemknn"
[model.options]
k = 50
)";

TEST(Config, FlattensNestedTables) {
  Config c = Config::from_toml_string(kToml, "exp.toml");
  EXPECT_TRUE(c.has("seed"));
  EXPECT_TRUE(c.has("data.path"));
  EXPECT_TRUE(c.has("model.options.k"));
  EXPECT_FALSE(c.has("model.options"));
  EXPECT_EQ(c.get_int("seed", 0), 7);
  EXPECT_EQ(c.get_string("data.path", ""), "ml-100k/u.data");
  EXPECT_DOUBLE_EQ(c.get_double("data.min_rating", 0), 3.5);
  EXPECT_TRUE(c.get_bool("data.implicit", false));
  EXPECT_EQ(c.get_int("split.seed", 0), 42);
  EXPECT_THAT(c.get_list("split.ratios", {}), ElementsAre("0.8", "0.1", "0.1"));
  EXPECT_THAT(c.get_int_list("split.shots", {}), ElementsAre(0, 1, 3));
  EXPECT_EQ(c.get_int("model.options.k", 0), 50);
  EXPECT_EQ(c.get_string("model.name", ""), "itemknn");
  EXPECT_NO_THROW(c.check_all_used());
}

TEST(Config, DefaultsWhenAbsent) {
  Config c;
  EXPECT_EQ(c.get_int("a.int", 5, "an int"), 5);
  EXPECT_DOUBLE_EQ(c.get_double("a.dbl", 0.25), 0.25);
  EXPECT_FALSE(c.get_bool("a.flag", false));
  EXPECT_EQ(c.get_string("a.s", "x"), "x");
  EXPECT_THAT(c.get_list("a.l", {"p", "q"}), ElementsAre("p", "q"));
  EXPECT_THAT(c.get_int_list("a.il", {1, 2}), ElementsAre(1, 2));
  EXPECT_EQ(c.docs().at("a.int"), std::make_pair(std::string("5"), std::string("an int")));
  EXPECT_EQ(c.docs().at("a.dbl").first, "0.25");
  EXPECT_EQ(c.docs().at("a.l").first, R"(["p", "q"])");
}

TEST(Config, TomlSyntaxErrorNamesFileAndLine) {
  const std::string msg = error_of([] { Config::from_toml_string("a = 1\nb = = 2\n", "bad.toml"); });
  EXPECT_THAT(msg, HasSubstr("config bad.toml:2:"));
}

TEST(Config, ArrayOfTablesIsRejected) {
  const std::string msg = error_of([] { Config::from_toml_string("[[runs]]\nx = 1\n", "r.toml"); });
  EXPECT_THAT(msg, HasSubstr("config key `runs` (from r.toml): arrays of tables"));
}

TEST(Config, SetParsesTomlScalars) {
  Config c;
  c.set("train.lr=1e-3");
  c.set("model.factors=64");
  c.set("data.implicit=true");
  c.set("data.path=/tmp/ml 100k/u.data");  // not TOML -> bare string
  c.set("data.sep=\"::\"");
  c.set("eval.k=[5, 10, 20]");
  c.set("eval.metrics=ndcg,recall");
  c.set(" model.name = als ");
  EXPECT_DOUBLE_EQ(c.get_double("train.lr", 0), 1e-3);
  EXPECT_EQ(c.get_int("model.factors", 0), 64);
  EXPECT_DOUBLE_EQ(c.get_double("model.factors", 0), 64.0);  // an int is a valid double
  EXPECT_TRUE(c.get_bool("data.implicit", false));
  EXPECT_EQ(c.get_string("data.path", ""), "/tmp/ml 100k/u.data");
  EXPECT_EQ(c.get_string("data.sep", ""), "::");
  EXPECT_THAT(c.get_int_list("eval.k", {}), ElementsAre(5, 10, 20));
  EXPECT_THAT(c.get_list("eval.metrics", {}), ElementsAre("ndcg", "recall"));
  EXPECT_EQ(c.get_string("model.name", ""), "als");
}

TEST(Config, SetInlineTableExpandsToDottedKeys) {
  Config c;
  c.set("model={name = \"bpr\", factors = 8}");
  EXPECT_EQ(c.get_string("model.name", ""), "bpr");
  EXPECT_EQ(c.get_int("model.factors", 0), 8);
}

TEST(Config, SetOverridesFileValue) {
  Config c = Config::from_toml_string(kToml, "exp.toml");
  c.set("split.seed=9");
  EXPECT_EQ(c.get_int("split.seed", 0), 9);
}

TEST(Config, SetWithoutEqualsIsAnError) {
  Config c;
  EXPECT_EQ(error_of([&] { c.set("train.lr"); }), "--set expects section.key=value, got `train.lr`");
  EXPECT_THAT(error_of([&] { c.set("=3"); }), HasSubstr("`` is not a valid key"));
  EXPECT_THAT(error_of([&] { c.set("a..b=3"); }), HasSubstr("`a..b` is not a valid key"));
}

TEST(Config, TypeErrorsNameKeyAndOrigin) {
  Config c = Config::from_toml_string("[model]\nfactors = 0.5\nname = [\"a\"]\nflag = 1\n", "m.toml");
  EXPECT_EQ(error_of([&] { c.get_int("model.factors", 8); }),
            "config key `model.factors` (from m.toml) expects an integer, got a float `0.5`");
  EXPECT_EQ(error_of([&] { c.get_string("model.name", ""); }),
            "config key `model.name` (from m.toml) expects a string, got a list `[\"a\"]`");
  EXPECT_EQ(error_of([&] { c.get_bool("model.flag", false); }),
            "config key `model.flag` (from m.toml) expects a boolean (true or false), got an integer `1`");
  c.set("train.lr=fast");
  EXPECT_EQ(error_of([&] { c.get_double("train.lr", 0.1); }),
            "config key `train.lr` (from --set) expects a number, got a string `fast`");
  c.set("eval.k=5,x");
  EXPECT_EQ(error_of([&] { c.get_int_list("eval.k", {}); }),
            "config key `eval.k` (from --set) expects a list of integers, but `x` is not an integer");
}

TEST(Config, GetIntRejectsStringsEvenIfNumeric) {
  Config c = Config::from_toml_string("n = \"5\"\n", "n.toml");
  EXPECT_THAT(error_of([&] { c.get_int("n", 0); }), HasSubstr("expects an integer, got a string"));
}

TEST(Config, RequireString) {
  Config c;
  EXPECT_EQ(error_of([&] { c.require_string("data.path", "ratings file"); }),
            "missing config key `data.path` (ratings file)");
  EXPECT_EQ(error_of([&] { c.require_string("data.path"); }), "missing config key `data.path`");
  c.set("data.path=x.csv");
  EXPECT_EQ(c.require_string("data.path"), "x.csv");
}

TEST(Config, CheckAllUsedNamesUnknownKeysWithHint) {
  Config c = Config::from_toml_string("[split]\nsed = 1\n", "exp.toml");
  c.set("model.factorz=3");
  c.get_int("split.seed", 42, "split seed");
  c.get_int("model.factors", 8);
  const std::string msg = error_of([&] { c.check_all_used(); });
  EXPECT_EQ(msg,
            "unknown config key `model.factorz` (from --set), did you mean `model.factors`?; "
            "unknown config key `split.sed` (from exp.toml), did you mean `split.seed`?");
}

TEST(Config, CheckAllUsedWithoutHint) {
  Config c;
  c.set("zzz.qqq=1");
  c.get_int("model.factors", 8);
  EXPECT_EQ(error_of([&] { c.check_all_used(); }), "unknown config key `zzz.qqq` (from --set)");
}

TEST(Config, SectionReturnsOptionsAndMarksUsed) {
  Config c = Config::from_toml_string(kToml, "exp.toml");
  c.set("model.options.shrink=10.5");
  c.set("model.options.tags=[\"a\", \"b\"]");
  auto opts = c.section("model.options");
  EXPECT_EQ(opts.size(), 3u);
  EXPECT_EQ(opts.at("k"), "50");
  EXPECT_EQ(opts.at("shrink"), "10.5");
  EXPECT_EQ(opts.at("tags"), "a,b");
  EXPECT_TRUE(c.section("nothing").empty());
  EXPECT_TRUE(c.section("model.opt").empty());  // a prefix must end at a dot
  // Everything else is unknown, but model.options.* is not.
  const std::string msg = error_of([&] { c.check_all_used(); });
  EXPECT_THAT(msg, Not(HasSubstr("model.options")));
  EXPECT_THAT(msg, HasSubstr("unknown config key `seed`"));
}

TEST(Config, EffectiveAndGiven) {
  Config c;
  c.set("train.lr=0.01");
  c.set("unused=1");
  c.get_double("train.lr", 0.1);
  c.get_int("train.epochs", 10);
  c.get_list("eval.metrics", {"ndcg"});
  const nlohmann::json eff = c.effective();
  EXPECT_EQ(eff, nlohmann::json::parse(
                     R"({"eval.metrics": ["ndcg"], "train.epochs": 10, "train.lr": 0.01})"));
  EXPECT_EQ(c.given(), nlohmann::json::parse(R"({"train.lr": 0.01, "unused": 1})"));
}

TEST(Config, MergeAndErase) {
  Config a = Config::from_toml_string("x = 1\ny = 2\n", "a.toml");
  Config b = Config::from_toml_string("y = \"s\"\n", "b.toml");
  a.merge(b);
  EXPECT_EQ(a.get_int("x", 0), 1);
  EXPECT_THAT(error_of([&] { a.get_int("y", 0); }), HasSubstr("`y` (from b.toml)"));
  a.erase("y");
  EXPECT_FALSE(a.has("y"));
  EXPECT_EQ(a.get_int("y", 3), 3);
}

TEST(Config, FromFile) {
  const auto dir = std::filesystem::temp_directory_path() / ("fewrec_cfg_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = dir / "exp.toml";
  std::ofstream(path) << "[train]\nlr = \"x\"\n";
  Config c = Config::from_toml_file(path);
  EXPECT_EQ(error_of([&] { c.get_double("train.lr", 0); }),
            fmt::format("config key `train.lr` (from {}) expects a number, got a string `x`", path.string()));
  EXPECT_EQ(error_of([&] { Config::from_toml_file(dir / "missing.toml"); }, ErrorCode::kNotFound),
            fmt::format("config file `{}` not found", (dir / "missing.toml").string()));
  EXPECT_EQ(error_of([&] { Config::from_toml_file(dir); }, ErrorCode::kIo),
            fmt::format("cannot read config file `{}`: Is a directory", dir.string()));
  std::filesystem::remove_all(dir);
}

TEST(Config, ValueToStringRoundTripsThroughSet) {
  const std::vector<ConfigValue> values = {
      ConfigValue(true), ConfigValue(int64_t{-3}), ConfigValue(1.0), ConfigValue(1e-3),
      ConfigValue(std::string("abc")), ConfigValue(std::string("12")), ConfigValue(std::string("")),
      ConfigValue(std::string("say \"hi\"")), ConfigValue(std::string("true")),
      ConfigValue(std::vector<std::string>{"a", "1", "b c"})};
  EXPECT_EQ(config_value_to_string(ConfigValue(1.0)), "1.0");
  EXPECT_EQ(config_value_to_string(ConfigValue(std::string("abc"))), "abc");
  EXPECT_EQ(config_value_to_string(ConfigValue(std::string("12"))), "\"12\"");
  for (const ConfigValue& v : values) {
    Config c;
    c.set("k=" + config_value_to_string(v));
    EXPECT_EQ(c.given()["k"], std::visit([](const auto& x) { return nlohmann::json(x); }, v))
        << config_value_to_string(v);
  }
}

TEST(ParseKvList, ParsesOptions) {
  auto m = parse_kv_list("k=50, shrink = 10,mode=", "model `itemknn`");
  EXPECT_EQ(m.size(), 3u);
  EXPECT_EQ(m.at("k"), "50");
  EXPECT_EQ(m.at("shrink"), "10");
  EXPECT_EQ(m.at("mode"), "");
  EXPECT_TRUE(parse_kv_list("", "x").empty());
  EXPECT_TRUE(parse_kv_list("  ", "x").empty());
}

TEST(ParseKvList, Errors) {
  EXPECT_EQ(error_of([] { parse_kv_list("k=5,shrink", "model `itemknn`"); }),
            "model `itemknn`: expected key=value, got `shrink`");
  EXPECT_EQ(error_of([] { parse_kv_list("=5", "index `hnsw`"); }),
            "index `hnsw`: missing option name before `=` in `=5`");
  EXPECT_EQ(error_of([] { parse_kv_list("k=1,k=2", "m"); }), "m: option `k` given twice");
  EXPECT_THAT(error_of([] { parse_kv_list("k=1,,m=2", "m"); }), HasSubstr("m: empty option"));
}

TEST(OptionReader, ReadsTypedOptions) {
  OptionReader r(parse_kv_list("k=20,shrink=2.5,normalize=yes,sim=cosine", "m"), "model `itemknn`");
  EXPECT_EQ(r.get_int("k", 100, "neighbours", 1, 1000), 20);
  EXPECT_DOUBLE_EQ(r.get_double("shrink", 0, "", 0.0), 2.5);
  EXPECT_TRUE(r.get_bool("normalize", false));
  EXPECT_EQ(r.get_string("sim", "cosine"), "cosine");
  EXPECT_EQ(r.get_int("min_support", 1), 1);
  EXPECT_NO_THROW(r.check_all_used());
  const std::map<std::string, std::string> expected = {
      {"k", "20"}, {"shrink", "2.5"}, {"normalize", "true"}, {"sim", "cosine"}, {"min_support", "1"}};
  EXPECT_EQ(r.effective(), expected);
}

TEST(OptionReader, TypeAndRangeErrors) {
  OptionReader r({{"k", "x"}, {"n", "0"}, {"lr", "2"}, {"b", "maybe"}, {"m", "-1"}, {"d", "nan"}},
                 "model `itemknn`");
  EXPECT_EQ(error_of([&] { r.get_int("k", 1); }), "model `itemknn`: option `k` expects an integer, got `x`");
  EXPECT_EQ(error_of([&] { r.get_int("n", 1, "", 1, 1000); }),
            "model `itemknn`: option `n` must be in [1, 1000], got 0");
  EXPECT_EQ(error_of([&] { r.get_int("m", 1, "", 0); }), "model `itemknn`: option `m` must be >= 0, got -1");
  EXPECT_EQ(error_of([&] { r.get_double("lr", 0.1, "", std::nullopt, 1.0); }),
            "model `itemknn`: option `lr` must be <= 1, got 2");
  EXPECT_EQ(error_of([&] { r.get_double("d", 0.1); }), "model `itemknn`: option `d` expects a number, got `nan`");
  EXPECT_EQ(error_of([&] { r.get_bool("b", false); }),
            "model `itemknn`: option `b` expects true or false, got `maybe`");
}

TEST(OptionReader, DefaultOutOfRangeIsAlsoAnError) {
  OptionReader r({}, "model `x`");
  EXPECT_EQ(error_of([&] { r.get_double("alpha", -1.0, "", 0.0, 1.0); }),
            "model `x`: option `alpha` must be in [0, 1], got -1");
}

TEST(OptionReader, UnknownOptionsListKnownOnes) {
  OptionReader r({{"kk", "5"}, {"zzzzzz", "1"}}, "model `itemknn`");
  r.get_int("k", 100);
  r.get_double("shrink", 0);
  EXPECT_EQ(error_of([&] { r.check_all_used(); }),
            "model `itemknn`: unknown options `kk` (did you mean `k`?), `zzzzzz`; known options: k, shrink");
  OptionReader none({{"a", "1"}}, "model `pop`");
  EXPECT_EQ(error_of([&] { none.check_all_used(); }), "model `pop`: unknown option `a`; known options: none");
}

TEST(ClosestMatch, UsesLevenshteinWithLengthScaledLimit) {
  const std::vector<std::string> keys = {"split.seed", "split.ratio", "model.factors"};
  EXPECT_EQ(closest_match("split.sed", keys), "split.seed");
  EXPECT_EQ(closest_match("model.factorz", keys), "model.factors");
  EXPECT_EQ(closest_match("splt.rati", keys), "split.ratio");    // distance 2
  EXPECT_EQ(closest_match("spilt.ratoi", keys), "");              // distance 4 > 11/3
  EXPECT_EQ(closest_match("model.fatcorz", keys), "model.factors");  // distance 3 <= 13/3
  EXPECT_EQ(closest_match("totally.different", keys), "");
  EXPECT_EQ(closest_match("ab", {"xy"}), "xy");   // distance 2 <= max(2, 0)
  EXPECT_EQ(closest_match("abc", {"xyz"}), "");   // distance 3 > 2
  EXPECT_EQ(closest_match("x", {}), "");
}

}  // namespace
}  // namespace fewrec::core
