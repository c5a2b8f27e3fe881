// Sightings: since when each lease's record version has looked unchanged to this process.
#include "stores/dynamodb/dynamo_sightings.h"

#include <gtest/gtest.h>

namespace aec::aws {
namespace {

using namespace std::chrono_literals;

const MonoTime t0 = MonoTime(100s);

TEST(Sightings, AVersionIsDatedFromItsFirstSightingUntilItChanges) {
  Sightings s;
  EXPECT_EQ(s.lease("k", 1, "a", t0), t0);
  EXPECT_EQ(s.lease("k", 1, "a", t0 + 5s), t0);       // unchanged: still counted from t0
  EXPECT_EQ(s.lease("k", 1, "b", t0 + 6s), t0 + 6s);  // renewed: counted again
  EXPECT_EQ(s.lease("k", 2, "b", t0 + 7s), t0 + 7s);  // another token is another lease
  EXPECT_EQ(s.lease("other", 1, "b", t0 + 8s), t0 + 8s);
}

TEST(Sightings, AVersionThisProcessWroteIsDatedFromTheWrite) {
  Sightings s;
  s.wrote_lease("k", 1, "mine", t0);
  EXPECT_EQ(s.lease("k", 1, "mine", t0 + 3s), t0);
  s.wrote_place("k", "e1", "p", t0 + 1s);
  EXPECT_EQ(s.place("k", "e1", "p", t0 + 4s), t0 + 1s);
}

TEST(Sightings, WhatTheKeyNoLongerHoldsIsForgotten) {
  Sightings s;
  s.lease("k", 1, "a", t0);
  s.lease("k", 2, "a", t0);
  s.place("k", "w", "p", t0);
  KeyRecord rec;
  rec.leases.push_back({.run = {.execution = {.token = 2}}, .rv = "a"});
  s.keep_only("k", rec);
  EXPECT_EQ(s.lease("k", 2, "a", t0 + 9s), t0);       // kept
  EXPECT_EQ(s.lease("k", 1, "a", t0 + 9s), t0 + 9s);  // forgotten: a new sighting
  EXPECT_EQ(s.place("k", "w", "p", t0 + 9s), t0 + 9s);
  s.keep_only("k", KeyRecord{});
  EXPECT_EQ(s.size(), 0u);  // a key with nothing left is dropped whole
}

}  // namespace
}  // namespace aec::aws
