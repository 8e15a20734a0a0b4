#include "fewrec/core/strings.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace fewrec::core {
namespace {

using ::testing::ElementsAre;

TEST(Strings, TrimRemovesBlanksOnBothSides) {
  EXPECT_EQ(trim("  a b \t\r\n"), "a b");
  EXPECT_EQ(trim("   "), "");
  EXPECT_EQ(trim(""), "");
  EXPECT_EQ(trim("x"), "x");
}

TEST(Strings, SplitKeepsEmptyFields) {
  EXPECT_THAT(split("a,,b,", ','), ElementsAre("a", "", "b", ""));
  EXPECT_THAT(split("", ','), ElementsAre(""));
  EXPECT_THAT(split("1::2::::3", "::"), ElementsAre("1", "2", "", "3"));
  EXPECT_THAT(split("abc", "::"), ElementsAre("abc"));
  EXPECT_THAT(split("abc", ""), ElementsAre("abc"));
}

TEST(Strings, JoinLowerStartsWith) {
  EXPECT_EQ(join({"a", "b", "c"}, ", "), "a, b, c");
  EXPECT_EQ(join({}, ","), "");
  EXPECT_EQ(to_lower("MovieLens-1M"), "movielens-1m");
  EXPECT_TRUE(starts_with("model.factors", "model."));
  EXPECT_FALSE(starts_with("mode", "model."));
}

TEST(Strings, ParseIntIsStrict) {
  EXPECT_EQ(parse_int("42"), 42);
  EXPECT_EQ(parse_int(" -7 "), -7);
  EXPECT_EQ(parse_int("+5"), 5);
  EXPECT_EQ(parse_int("9223372036854775807"), INT64_MAX);
  EXPECT_EQ(parse_int("9223372036854775808"), std::nullopt);  // overflow
  EXPECT_EQ(parse_int(""), std::nullopt);
  EXPECT_EQ(parse_int("  "), std::nullopt);
  EXPECT_EQ(parse_int("1.5"), std::nullopt);
  EXPECT_EQ(parse_int("12abc"), std::nullopt);
  EXPECT_EQ(parse_int("1 2"), std::nullopt);
  EXPECT_EQ(parse_int("+"), std::nullopt);
  EXPECT_EQ(parse_int("+-1"), std::nullopt);
  EXPECT_EQ(parse_int("0x10"), std::nullopt);
}

TEST(Strings, ParseDoubleAcceptsNumbersOnly) {
  EXPECT_EQ(parse_double("1e-3"), 1e-3);
  EXPECT_EQ(parse_double("4"), 4.0);
  EXPECT_EQ(parse_double("-0.5"), -0.5);
  EXPECT_EQ(parse_double(" 2.5\t"), 2.5);
  EXPECT_EQ(parse_double("+3.25"), 3.25);
  EXPECT_EQ(parse_double(".5"), 0.5);
  EXPECT_EQ(parse_double("1E3"), 1000.0);
  EXPECT_EQ(parse_double(""), std::nullopt);
  EXPECT_EQ(parse_double("1.2.3"), std::nullopt);
  EXPECT_EQ(parse_double("abc"), std::nullopt);
  EXPECT_EQ(parse_double("1 2"), std::nullopt);
  EXPECT_EQ(parse_double("1e"), std::nullopt);
  EXPECT_EQ(parse_double("nan"), std::nullopt);
  EXPECT_EQ(parse_double("inf"), std::nullopt);
  EXPECT_EQ(parse_double("1e999"), std::nullopt);
}

TEST(Strings, ParseFloat) {
  EXPECT_EQ(parse_float("0.25"), 0.25f);
  EXPECT_EQ(parse_float("3"), 3.0f);
  EXPECT_EQ(parse_float("x"), std::nullopt);
  EXPECT_EQ(parse_float("1e60"), std::nullopt);  // out of float range
}

TEST(Strings, ParseBool) {
  for (const char* t : {"true", "TRUE", "1", "yes", "on", " On "}) EXPECT_EQ(parse_bool(t), true) << t;
  for (const char* f : {"false", "0", "no", "off", "False"}) EXPECT_EQ(parse_bool(f), false) << f;
  for (const char* bad : {"", "2", "y", "truthy"}) EXPECT_EQ(parse_bool(bad), std::nullopt) << bad;
}

TEST(Strings, Utf8Validation) {
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("Am\xc3\xa9lie"));               // é
  EXPECT_TRUE(is_valid_utf8("\xe2\x82\xac"));                // €
  EXPECT_TRUE(is_valid_utf8("\xf0\x9f\x8e\xac"));            // 🎬
  EXPECT_FALSE(is_valid_utf8("Am\xe9lie"));                  // Latin-1 é
  EXPECT_FALSE(is_valid_utf8("\xc3"));                       // truncated
  EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));                   // overlong
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));               // surrogate
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));           // > U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\x80"));                       // lone continuation
}

TEST(Strings, Latin1ToUtf8) {
  EXPECT_EQ(latin1_to_utf8("Am\xe9lie"), "Am\xc3\xa9lie");
  EXPECT_EQ(latin1_to_utf8("abc"), "abc");
  EXPECT_TRUE(is_valid_utf8(latin1_to_utf8("\xff\x80\x7f")));
}

TEST(Strings, ExcerptEscapesAndTruncates) {
  EXPECT_EQ(excerpt("a\tb\nc\x01"), "a\\tb\\nc\\x01");
  EXPECT_EQ(excerpt("bad \xff byte"), "bad \\xff byte");
  EXPECT_EQ(excerpt("caf\xc3\xa9"), "caf\xc3\xa9");
  EXPECT_EQ(excerpt("0123456789", 10), "0123456789");
  EXPECT_EQ(excerpt("0123456789abc", 10), "0123456...");
  EXPECT_LE(excerpt(std::string(1000, '\n'), 80).size(), 80u);
}

TEST(Strings, FormatDurationAndCount) {
  EXPECT_EQ(format_duration(3.21), "3.2s");
  EXPECT_EQ(format_duration(42), "42s");
  EXPECT_EQ(format_duration(65), "1m05s");
  EXPECT_EQ(format_duration(7380), "2h03m");
  EXPECT_EQ(format_duration(-1), "?");
  EXPECT_EQ(format_count(950), "950");
  EXPECT_EQ(format_count(12.5), "12.5");
  EXPECT_EQ(format_count(1234), "1.2k");
  EXPECT_EQ(format_count(3.4e6), "3.4M");
  EXPECT_EQ(format_count(999999), "1.0M");
  EXPECT_EQ(format_count(2e9), "2.0G");
}

TEST(Strings, PeakRssIsPositiveOnLinux) {
  std::vector<char> block(8 << 20, 1);  // touch 8 MiB
  EXPECT_GT(peak_rss_bytes(), int64_t{8} << 20);
  EXPECT_EQ(block[123], 1);
}

}  // namespace
}  // namespace fewrec::core
