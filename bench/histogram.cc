#include "histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace aec::bench {

// Values below 128 have a bucket each. Above, a value whose highest set bit is b (b >= 7) falls in
// one of 64 buckets of width 2^(b-6) for that power of two: the bucket keeps the top 7 bits.
int Histogram::bucket_of(std::int64_t value) {
  if (value < 128) {
    return static_cast<int>(std::max<std::int64_t>(value, 0));
  }
  const auto v = static_cast<std::uint64_t>(value);
  const int shift = std::bit_width(v) - 7;             // >= 1
  const auto mantissa = static_cast<int>(v >> shift);  // in [64, 127]
  return 128 + (shift - 1) * 64 + (mantissa - 64);
}

std::int64_t Histogram::bucket_low(int bucket) {
  if (bucket < 128) {
    return bucket;
  }
  const int shift = (bucket - 128) / 64 + 1;
  const std::int64_t mantissa = (bucket - 128) % 64 + 64;
  return mantissa << shift;
}

std::int64_t Histogram::bucket_high(int bucket) {
  if (bucket < 128) {
    return bucket;
  }
  const int shift = (bucket - 128) / 64 + 1;
  const std::int64_t mantissa = (bucket - 128) % 64 + 64;
  return ((mantissa + 1) << shift) - 1;
}

void Histogram::record(std::int64_t value) {
  value = std::max<std::int64_t>(value, 0);
  ++counts_[bucket_of(value)];
  ++count_;
  sum_ += value;
  max_ = std::max(max_, value);
}

void Histogram::merge(const Histogram& other) {
  for (int i = 0; i < kBuckets; ++i) {
    counts_[i] += other.counts_[i];
  }
  count_ += other.count_;
  sum_ += other.sum_;
  max_ = std::max(max_, other.max_);
}

std::int64_t Histogram::quantile(double q) const {
  if (count_ == 0) {
    return 0;
  }
  // The rank of the wanted value, 1-based: the smallest value with at least q of all at or below.
  const auto rank = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(q * count_)));
  std::int64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      return std::min(max_, (bucket_low(i) + bucket_high(i)) / 2);
    }
  }
  return max_;
}

}  // namespace aec::bench
