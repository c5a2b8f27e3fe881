// Execution ids and retry attempts: execution_base() and same_execution().
#include <gtest/gtest.h>

#include <aec/execution.h>

namespace aec {
namespace {

TEST(ExecutionBaseTest, StripsAKubernetesStyleAttemptSuffix) {
  EXPECT_EQ(execution_base("job-7-abcde"), "job-7");
  EXPECT_EQ(execution_base("job-7-a1b2c"), "job-7");
  EXPECT_EQ(execution_base("my-data-job-1718000000-x9z8q"), "my-data-job-1718000000");
  EXPECT_EQ(execution_base("x-12345"), "x");  // digits alone are alphanumeric too
}

TEST(ExecutionBaseTest, AnIdWithoutAnAttemptSuffixIsItsOwnBase) {
  for (const char* id :
       {"job-7", "job-7-abcd", "job-7-abcdef", "job-7-ABCDE", "job-7-ab_de", "job-7_abcde", "abcde",
        "-abcde", "", "job-7-abcde-", "20261123T180401Z-3f9a1c2b7d4e8a61"}) {
    EXPECT_EQ(execution_base(id), id) << id;
  }
}

TEST(ExecutionBaseTest, StripsOnlyOneSuffix) {
  EXPECT_EQ(execution_base("job-abcde-fghij"), "job-abcde");
}

TEST(SameExecutionTest, AttemptsOfOneExecutionMatchEachOtherAndTheirBase) {
  EXPECT_TRUE(same_execution("job-7-abcde", "job-7-fghij"));
  EXPECT_TRUE(same_execution("job-7", "job-7-fghij"));
  EXPECT_TRUE(same_execution("job-7-abcde", "job-7"));
  EXPECT_TRUE(same_execution("job-7-abcde", "job-7-abcde"));
  EXPECT_TRUE(same_execution("job-7", "job-7"));
}

TEST(SameExecutionTest, ComparesWholeBasesNeverAPrefix) {
  EXPECT_FALSE(same_execution("job-1", "job-12-abcde"));
  EXPECT_FALSE(same_execution("job-7-abcde", "job-77-xyzab"));
  EXPECT_FALSE(same_execution("job-7", "job-77"));
  EXPECT_FALSE(same_execution("job-7-abcde", "job-8-abcde"));
  EXPECT_FALSE(same_execution("job-7-abcdef", "job-7-abcde"));  // 6 characters: not an attempt
  EXPECT_FALSE(same_execution("", "job-7"));
}

}  // namespace
}  // namespace aec
