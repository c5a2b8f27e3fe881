// The argument checks every store applies (core/store_checks.h).
#include "core/store_checks.h"

#include <chrono>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include <aec/open_store.h>

#include "core/duration.h"

namespace aec {
namespace {

using namespace std::chrono_literals;

void expect_too_long(const Status& s, std::string_view what) {
  EXPECT_EQ(s.code(), Code::InvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find(std::string(what) + " must be at most 3650d"), std::string::npos)
      << s.to_string();
}

// Fuzz bug "huge-duration": a ttl (queue_ttl, older_than) near int64 milliseconds made the
// stores' now + ttl overflow int64 nanoseconds.
TEST(StoreChecks, HugeDurationPastTheMaximumIsInvalidArgument) {
  const milliseconds past = kMaxDuration + 1ms;
  AcquireRequest ok{.key = "k",
                    .execution_id = "e",
                    .ttl = kMaxDuration,
                    .queue_ttl = kMaxDuration,
                    .park = kMaxDuration};
  EXPECT_TRUE(check_acquire_request(ok).is_ok());
  AcquireRequest req = ok;
  req.ttl = past;
  expect_too_long(check_acquire_request(req), "ttl");
  req = ok;
  req.queue_ttl = milliseconds::max();
  expect_too_long(check_acquire_request(req), "queue_ttl");
  req = ok;
  req.park = past;
  expect_too_long(check_acquire_request(req), "park");
  req = ok;
  req.park = -1ms;
  EXPECT_EQ(check_acquire_request(req).code(), Code::InvalidArgument);

  EXPECT_TRUE(check_lease_args("k", 1, kMaxDuration).is_ok());
  expect_too_long(check_lease_args("k", 1, milliseconds::max()), "ttl");
  EXPECT_TRUE(check_purge_request({.older_than = kMaxDuration}).is_ok());
  expect_too_long(check_purge_request({.older_than = past}), "older_than");
  EXPECT_EQ(check_purge_request({.older_than = milliseconds::min()}).code(), Code::InvalidArgument);

  // A store refuses them before any arithmetic.
  auto store = open_store("memory:");
  ASSERT_TRUE(store.has_value()) << store.error().to_string();
  req = ok;
  req.ttl = milliseconds::max();
  auto acquired = (*store)->acquire(req);
  ASSERT_FALSE(acquired.has_value());
  expect_too_long(acquired.error(), "ttl");
  auto granted = (*store)->acquire(ok);
  ASSERT_TRUE(granted.has_value()) << granted.error().to_string();
  auto renewed = (*store)->renew("k", granted->lease.token, milliseconds::max());
  ASSERT_FALSE(renewed.has_value());
  expect_too_long(renewed.error(), "ttl");
  auto purged = (*store)->purge({.older_than = milliseconds::max()});
  ASSERT_FALSE(purged.has_value());
  expect_too_long(purged.error(), "older_than");
}

}  // namespace
}  // namespace aec
