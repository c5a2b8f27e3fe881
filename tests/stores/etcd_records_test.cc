// The etcd store's values as it reads them back (etcd_records.h), without a server: a value that
// is not what the store writes is DataLoss naming the value, never an exception or an overflow.
#include "stores/etcd/etcd_records.h"

#include <chrono>
#include <cstdint>
#include <string>

#include <gtest/gtest.h>

namespace aec::testing {
namespace {

template <typename T>
void expect_corrupt(const Result<T>& r, std::string_view what) {
  ASSERT_FALSE(r.has_value()) << what;
  EXPECT_EQ(r.error().code(), Code::DataLoss) << r.error().to_string();
  EXPECT_NE(r.error().message().find(what), std::string::npos) << r.error().to_string();
}

// Fuzz bug "etcd-json-types": json::value() threw on a field of another type, and the exception
// terminated the process.
TEST(EtcdRecords, EtcdJsonTypesAFieldOfAnotherTypeIsDataLoss) {
  expect_corrupt(etcd::execution_from_text(R"({"id":2,"status":"failed","labels":{}})"),
                 "execution");
  expect_corrupt(etcd::execution_from_text(R"({"id":"x","status":7,"labels":{}})"), "execution");
  expect_corrupt(etcd::execution_from_text(R"({"id":"x","status":"failed","labels":{},"pid":"1"})"),
                 "execution");
  expect_corrupt(
      etcd::execution_from_text(R"({"id":"x","status":"failed","labels":{},"started":1.5})"),
      "execution");
  expect_corrupt(etcd::meta_from_text(R"({"key":1,"running":[]})"), "meta");
  expect_corrupt(etcd::meta_from_text(R"({"key":"k","running":[],"ok":"3"})"), "meta");
  expect_corrupt(etcd::place_from_text(R"({"id":"e","ttl":"3000"})"), "queue place");
  expect_corrupt(
      etcd::lease_from_text(R"({"e":{"id":"x","status":"running","labels":{}},"seq":"5"})"),
      "lease");
  // What the store writes still reads back.
  auto meta = etcd::meta_from_text(R"({"key":"k","running":[[2,5]],"ok":3})");
  ASSERT_TRUE(meta.has_value()) << meta.error().to_string();
  EXPECT_EQ(meta->key, "k");
  EXPECT_EQ(meta->last_ok, 3);
}

std::string execution_started(std::string_view field, std::string_view ms) {
  return R"({"id":"x","status":"failed","labels":{},")" + std::string(field) +
         "\":" + std::string(ms) + "}";
}

// Fuzz bug "etcd-time-overflow": SysTime(milliseconds(started)) overflowed int64 nanoseconds.
TEST(EtcdRecords, EtcdTimeOverflowATimePastSysTimeIsDataLoss) {
  for (const char* field : {"started", "ended"}) {
    for (const char* ms :
         {"9223372036854775807", "-9223372036854775807", "9223372036855", "18446744073709551615"}) {
      SCOPED_TRACE(std::string(field) + " " + ms);
      expect_corrupt(etcd::execution_from_text(execution_started(field, ms)), "execution");
    }
  }
  // The last whole millisecond SysTime holds is still a time, and survives a round trip.
  auto e = etcd::execution_from_text(execution_started("started", "9223372036854"));
  ASSERT_TRUE(e.has_value()) << e.error().to_string();
  EXPECT_EQ(e->started_at.time_since_epoch(), std::chrono::milliseconds(9'223'372'036'854));
  auto again = etcd::execution_from_text(etcd::to_text(*e));
  ASSERT_TRUE(again.has_value()) << again.error().to_string();
  EXPECT_EQ(again->started_at, e->started_at);
}

}  // namespace
}  // namespace aec::testing
