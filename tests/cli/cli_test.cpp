// End-to-end tests of the `fewrec` binary: exit codes, messages, JSON output.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace fs = std::filesystem;
using ::testing::HasSubstr;

namespace {

struct Run {
  int code = -1;
  std::string out;  // stdout + stderr
};

Run run(const std::string& args) {
  std::string cmd = std::string(FEWREC_BINARY) + " " + args + " 2>&1";
  Run r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("fewrec_cli_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

const std::string kSmall =
    "--set data.synthetic.users=300 --set data.synthetic.items=150 -q ";

}  // namespace

TEST(Cli, ModelsListsBuiltins) {
  auto r = run("models");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("popularity"));
  EXPECT_THAT(r.out, HasSubstr("itemknn"));
}

TEST(Cli, UnknownModelListsKnownOnes) {
  auto r = run("evaluate " + kSmall + "--set model.name=itemknm");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("unknown model `itemknm`"));
  EXPECT_THAT(r.out, HasSubstr("itemknn"));
  EXPECT_THAT(r.out, HasSubstr("popularity"));
}

TEST(Cli, UnknownConfigKeyIsNamed) {
  auto r = run("evaluate " + kSmall + "--set split.sed=3");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("split.sed"));
}

TEST(Cli, UnknownModelOptionIsNamed) {
  auto r = run("evaluate " + kSmall + "--set model.name=itemknn --set model.neighbours=5");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("neighbours"));
}

TEST(Cli, MissingDataPathIsAClearError) {
  auto r = run("data stats -q --set data.format=movielens-100k --set data.path=/nonexistent/ml");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("/nonexistent/ml"));
}

TEST(Cli, BadConfigFileNamesTheFile) {
  auto dir = temp_dir("badtoml");
  std::ofstream(dir / "bad.toml") << "[data\nformat = 1\n";
  auto r = run("evaluate -q --config " + (dir / "bad.toml").string());
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("bad.toml"));
}

TEST(Cli, EvaluateWritesProtocolAndMetrics) {
  auto dir = temp_dir("eval");
  auto r = run("evaluate " + kSmall + "--set model.name=itemknn --set eval.k=10 --json " +
               (dir / "out.json").string());
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = read_json(dir / "out.json");
  ASSERT_TRUE(j.contains("protocol"));
  ASSERT_TRUE(j.contains("metrics"));
  for (const char* m : {"ndcg@10", "hr@10", "precision@10", "recall@10"}) {
    ASSERT_TRUE(j["metrics"].contains(m)) << m;
    double v = j["metrics"][m];
    EXPECT_GE(v, 0.0);
    EXPECT_LE(v, 1.0);
  }
  EXPECT_GT(j["metrics"]["ndcg@10"].get<double>(), 0.0);
  EXPECT_THAT(r.out, HasSubstr("full ranking"));
}

TEST(Cli, FewshotFixedQueryKeepsTheQueryAcrossShots) {
  auto dir = temp_dir("fewshot");
  auto r = run("fewshot " + kSmall + "--set model.name=popularity,itemknn --set 'eval.shots=[0,2,4]' " +
               "--set fewshot.cold_items=false --set fewshot.query=fixed --json " + (dir / "out.json").string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("query = their interactions from number 5 on (the same for every N"));
  auto j = read_json(dir / "out.json");
  EXPECT_EQ(j["cold_users"]["protocol"]["split"]["query_from"], 4);
  // Popularity ignores the support, and the query does not move: one value for every N.
  auto pop = j["cold_users"]["models"]["popularity"]["ndcg@10"]["mean"];
  ASSERT_EQ(pop.size(), 3u);
  EXPECT_GT(pop[0].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(pop[1].get<double>(), pop[0].get<double>());
  EXPECT_DOUBLE_EQ(pop[2].get<double>(), pop[0].get<double>());
  // With the default query (the rest), it moves.
  r = run("fewshot " + kSmall + "--set model.name=popularity --set 'eval.shots=[0,2,4]' --set fewshot.cold_items=false " +
          "--json " + (dir / "rest.json").string());
  ASSERT_EQ(r.code, 0) << r.out;
  auto rest = read_json(dir / "rest.json")["cold_users"]["models"]["popularity"]["ndcg@10"]["mean"];
  EXPECT_NE(rest[2].get<double>(), rest[0].get<double>());

  r = run("fewshot " + kSmall + "--set fewshot.query=last");
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("`fewshot.query`: expected rest or fixed, got `last`"));
}

// With the newest items held out the cold-item split is the same for every
// seed, so fewshot.seeds varies the training seed: the mean over seeds 1 and
// 2 is the mean of two runs with train.seed 1 and 2, with a spread.
TEST(Cli, FewshotSeedsVaryTrainingWhenTheColdItemSplitIsFixed) {
  auto dir = temp_dir("fewshot-seeds");
  const std::string items = "fewshot " + kSmall + "--set model.name=hybrid --set model.epochs=5 --set fewshot.cold_users=false ";
  auto r = run(items + "--set 'fewshot.seeds=[1,2]' --json " + (dir / "both.json").string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("2 seeds (the same split: seed s trains with train.seed = s)"));
  auto both = read_json(dir / "both.json")["cold_items"];
  EXPECT_THAT(both["seeds_vary"].get<std::string>(), HasSubstr("train.seed"));
  double single[2];
  for (int s : {1, 2}) {
    const auto out = dir / ("seed" + std::to_string(s) + ".json");
    r = run(items + "--set train.seed=" + std::to_string(s) + " --json " + out.string());
    ASSERT_EQ(r.code, 0) << r.out;
    single[s - 1] = read_json(out)["cold_items"]["models"]["hybrid:epochs=5"]["auc"]["mean"][0].get<double>();
  }
  const auto auc = both["models"]["hybrid:epochs=5"]["auc"];
  EXPECT_NE(single[0], single[1]);
  EXPECT_NEAR(auc["mean"][0].get<double>(), (single[0] + single[1]) / 2, 1e-12);
  EXPECT_GT(auc["std"][0].get<double>(), 0.0);
  // Random held-out items: the seeds vary the split, as for cold users.
  r = run(items + "--set split.cold_items=random --set 'fewshot.seeds=[1,2]' --json " + (dir / "random.json").string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(read_json(dir / "random.json")["cold_items"]["seeds_vary"], "the split");
}

TEST(Cli, TrainSaveLoadEvaluateGivesSameNumbers) {
  auto dir = temp_dir("train");
  auto model = (dir / "m.fwr").string();
  auto r1 = run("train " + kSmall + "--set model.name=itemknn --evaluate -o " + model + " --json " +
                (dir / "train.json").string());
  ASSERT_EQ(r1.code, 0) << r1.out;
  auto r2 = run("evaluate -q --model " + model + " --json " + (dir / "eval.json").string());
  ASSERT_EQ(r2.code, 0) << r2.out;
  auto a = read_json(dir / "train.json")["evaluation"]["metrics"];
  auto b = read_json(dir / "eval.json")["metrics"];
  EXPECT_EQ(a.dump(), b.dump());
}

TEST(Cli, RecommendForNewUserAndKnownUser) {
  auto dir = temp_dir("rec");
  auto model = (dir / "m.fwr").string();
  ASSERT_EQ(run("train " + kSmall + "--set model.name=itemknn -o " + model).code, 0);
  auto r = run("recommend -m " + model + " --items i1,i2,i3 -k 5 --json " + (dir / "r.json").string());
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = read_json(dir / "r.json");
  ASSERT_EQ(j["recommendations"].size(), 5u);
  for (const auto& rec : j["recommendations"]) {
    EXPECT_NE(rec["item"], "i1");
    EXPECT_NE(rec["item"], "i2");
    EXPECT_NE(rec["item"], "i3");
  }
  auto r2 = run("recommend -m " + model + " --user u5 -k 3");
  EXPECT_EQ(r2.code, 0) << r2.out;
  auto r3 = run("recommend -m " + model + " --items nosuchitem");
  EXPECT_EQ(r3.code, 2) << r3.out;
  EXPECT_THAT(r3.out, HasSubstr("unknown item id nosuchitem"));
  auto r4 = run("recommend -m " + model + " --user nosuchuser");
  EXPECT_EQ(r4.code, 2) << r4.out;
  EXPECT_THAT(r4.out, HasSubstr("unknown user `nosuchuser`"));
}

TEST(Cli, CorruptModelIsAClearError) {
  auto dir = temp_dir("corrupt");
  auto model = (dir / "m.fwr").string();
  ASSERT_EQ(run("train " + kSmall + "--set model.name=popularity -o " + model).code, 0);
  auto size = fs::file_size(model);
  fs::resize_file(model, size / 2);
  auto r = run("recommend -m " + model + " --items i1");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr(model));
}

TEST(Cli, DataSplitWritesFiles) {
  auto dir = temp_dir("split");
  auto r = run("data split " + kSmall + "--set split.kind=leave_one_out -o " + dir.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(fs::exists(dir / "train.csv"));
  EXPECT_TRUE(fs::exists(dir / "test.csv"));
  EXPECT_TRUE(fs::exists(dir / "split.json"));
}

const std::string kBehaviour = kSmall + "--set data.synthetic.behaviour=true ";

TEST(Cli, LabelsPrintsWeightsHeldOutMetricsAndWritesLabels) {
  auto dir = temp_dir("labels");
  auto r = run("labels " + kBehaviour + "--set 'data.label_model.target=rating:value>=4' -o " +
               (dir / "labels.csv").string() + " --save " + (dir / "model.json").string() + " --json " +
               (dir / "out.json").string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("log1p(weight_sum)"));
  EXPECT_THAT(r.out, HasSubstr("baseline events>=2"));
  auto j = read_json(dir / "out.json");
  const auto& h = j["heldout"];
  EXPECT_GT(h["label_model"]["count"].get<int64_t>(), 100);
  EXPECT_LT(h["label_model"]["log_loss"].get<double>(), h["baseline"]["log_loss"].get<double>());
  EXPECT_EQ(read_json(dir / "model.json")["target"], "rating:value>=4");
  std::ifstream csv(dir / "labels.csv");
  std::string header;
  std::getline(csv, header);
  EXPECT_EQ(header, "user,item,timestamp,label,confidence,probability,observed");
}

// A model trained on the label model's labels: the artifact's config
// (every key with its value) reloads and gives the same numbers.
TEST(Cli, TrainOnLabelModelLabelsSaveLoadEvaluate) {
  auto dir = temp_dir("labels_train");
  auto model = (dir / "m.fwr").string();
  auto r1 = run("train " + kBehaviour + "--set data.labels=model --set 'data.label_model.target=rating:value>=4' "
                "--set model.name=itemknn --evaluate -o " + model + " --json " + (dir / "train.json").string());
  ASSERT_EQ(r1.code, 0) << r1.out;
  auto r2 = run("evaluate -q --model " + model + " --json " + (dir / "eval.json").string());
  ASSERT_EQ(r2.code, 0) << r2.out;
  EXPECT_EQ(read_json(dir / "train.json")["evaluation"]["metrics"].dump(),
            read_json(dir / "eval.json")["metrics"].dump());
  EXPECT_GT(read_json(dir / "eval.json")["data"]["labels"]["positive_pairs"].get<int64_t>(), 0);
}

TEST(Cli, LabelModelErrorsNameTheKey) {
  auto r = run("labels " + kBehaviour);
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("needs `data.label_model.target`"));
  r = run("labels " + kBehaviour + "--set data.label_model.target=event:purchase");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("unknown event type `purchase`"));
  r = run("labels " + kBehaviour + "--set 'data.label_model.target=rating:value>=4' --set 'labels.baseline=dwell>=3'");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("config key `labels.baseline`: unknown signal `dwell`"));
  r = run("evaluate " + kSmall + "--set data.labels=model --set 'data.label_model.target=value>=4' "
          "--set data.positive_threshold=4");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("`data.positive_threshold` contradicts `data.labels = \"model\"`"));
}

// The README's generated tables (scripts/update-readme) must name every
// config key and every model option the binary knows.
TEST(Cli, ReadmeDocumentsEveryConfigKeyAndModelOption) {
  std::ifstream in(fs::path(FEWREC_SOURCE_DIR) / "README.md");
  ASSERT_TRUE(in) << "README.md not found";
  std::string readme((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const char* cmd : {"config --markdown", "models --markdown", "encoders --markdown"}) {
    auto r = run(cmd);
    ASSERT_EQ(r.code, 0) << r.out;
    std::istringstream lines(r.out);
    std::string line;
    int rows = 0;
    while (std::getline(lines, line)) {
      if (line.rfind("| `", 0) != 0) continue;
      ++rows;
      std::string key = line.substr(2, line.find('`', 3) - 1);
      EXPECT_THAT(readme, HasSubstr(line)) << key << " is missing or stale in README.md; run scripts/update-readme";
    }
    EXPECT_GT(rows, 5) << cmd;
  }
}

TEST(Cli, ConfigListsDocumentedKeys) {
  auto r = run("config");
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* k : {"data.path", "data.positive_threshold", "split.kind", "split.seed", "eval.k",
                        "model.name", "train.threads"})
    EXPECT_THAT(r.out, HasSubstr(k));
}

TEST(Cli, EncodeWritesItemVectorsAndReportsCoverage) {
  auto dir = temp_dir("encode");
  setenv("FEWREC_CACHE_DIR", (dir / "cache").c_str(), 1);  // inherited by the binary
  const std::string args = "encode " + kSmall + "--set text.encoder=hashing --set text.dim=32 -o " +
                           (dir / "v.fwr").string() + " --json " + (dir / "r.json").string();
  auto r = run(args);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("vocabulary coverage: 100.0%"));
  EXPECT_TRUE(fs::exists(dir / "v.fwr"));
  std::ifstream in(dir / "r.json");
  auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["dim"], 32);
  EXPECT_GT(j["items"].get<int>(), 10);
  EXPECT_EQ(j["items_without_text"], 0);
  // Unknown encoder options and encoders are clear errors.
  auto bad = run("encode " + kSmall + "--set text.encoder=hashing --set text.dims=32");
  EXPECT_EQ(bad.code, 2);
  EXPECT_THAT(bad.out, HasSubstr("dims"));
  bad = run("encode " + kSmall + "--set text.encoder=hashng");
  EXPECT_EQ(bad.code, 2);
  EXPECT_THAT(bad.out, HasSubstr("unknown text encoder `hashng`"));
  bad = run("encode " + kSmall + "--set text.encoder=glove --set text.path=/nonexistent/g.fwr");
  EXPECT_EQ(bad.code, 2);
  EXPECT_THAT(bad.out, HasSubstr("scripts/fetch-glove"));
  bad = run("encode " + kSmall + "--set text.encoder=hashing --set text.fields=nosuchcolumn");
  EXPECT_EQ(bad.code, 2);
  EXPECT_THAT(bad.out, HasSubstr("nosuchcolumn"));
  EXPECT_TRUE(fs::exists(dir / "cache" / "embeddings"));
  unsetenv("FEWREC_CACHE_DIR");
}
