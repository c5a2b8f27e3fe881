// The etcd store's key layout and the JSON of its values (see etcd_store.h for the design).
//
// Under the store's prefix P, for an aec key K (written E: K with '%' and '/' percent-encoded,
// so E holds no '/' and E of a key prefix is a prefix of E of the key):
//   P k/E/meta         {"key":K,"running":[[token,seq],...],"ok":seq}: the executions holding a
//                      lease (ended by a release or recorded Lost by a reap), and the latest
//                      Succeeded one. Its etcd version is the key's aec version.
//   P k/E/token        fencing-token counter: its etcd version is the last token. Never deleted.
//   P k/E/seq          sequence counter of history entries. Never deleted.
//   P k/E/l/TTTT...    a lease (token zero-padded), attached to an etcd lease of its own
//   P k/E/q/LLLL...    a queue place (its etcd lease's id, zero-padded), attached to that
//                      lease; the line is in create-revision order (a join moves no counter)
//   P h/E/SSSS...      an execution of the key's history; apart from the k/ tree so that list()
//                      is one range, sorted newest first by create revision
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <aec/clock.h>
#include <aec/execution.h>
#include <aec/status.h>

namespace aec::etcd {

class Layout {
 public:
  explicit Layout(std::string prefix) : prefix_(std::move(prefix)) {}

  // Every etcd key of `key`'s k/ tree (a prefix: E holds no '/').
  std::string tree(std::string_view key) const { return dir(key); }
  std::string meta(std::string_view key) const { return dir(key) + "meta"; }
  std::string token(std::string_view key) const { return dir(key) + "token"; }
  std::string seq(std::string_view key) const { return dir(key) + "seq"; }
  std::string leases(std::string_view key) const { return dir(key) + "l/"; }
  std::string lease(std::string_view key, std::int64_t token) const;
  std::string places(std::string_view key) const { return dir(key) + "q/"; }
  // A place in line, named by its etcd lease's id (its position is its create revision).
  std::string place(std::string_view key, std::int64_t lease_id) const;
  // Every history entry of `key`; of the keys starting with `key_prefix` (the whole history
  // for ""); one entry.
  std::string history(std::string_view key) const { return prefix_ + "h/" + encode(key) + "/"; }
  std::string history_of_prefix(std::string_view key_prefix) const {
    return prefix_ + "h/" + encode(key_prefix);
  }
  std::string entry(std::string_view key, std::int64_t seq) const;
  // Every key of the k/ tree.
  std::string keys() const { return prefix_ + "k/"; }
  // The aec key whose k/ tree holds `etcd_key`, and what the etcd key is there (the rest of it:
  // "meta", "token", "seq", "l/TOKEN" or "q/SEQ"); nullopt outside the k/ tree.
  struct Part {
    std::string key;
    std::string what;
  };
  std::optional<Part> part_of(std::string_view etcd_key) const;

 private:
  std::string dir(std::string_view key) const { return prefix_ + "k/" + encode(key) + "/"; }
  static std::string encode(std::string_view key);
  static std::string decode(std::string_view encoded);
  std::string prefix_;
};

// The key's meta value.
struct Meta {
  std::string key;
  std::vector<std::pair<std::int64_t, std::int64_t>> running;  // (token, history seq)
  std::int64_t last_ok = 0;  // seq of the latest Succeeded execution; 0: none
};
std::string to_text(const Meta& meta);
Result<Meta> meta_from_text(std::string_view text);

// A lease's value: its execution (Running), where it is in the history, the ttl it was given
// and, with a hand-moved clock, when it expires (that clock's monotonic ns).
struct LeaseValue {
  Execution execution;
  std::int64_t seq = 0;
  milliseconds ttl{0};
  std::optional<std::int64_t> expires_ns;
};
std::string to_text(const LeaseValue& lease);
Result<LeaseValue> lease_from_text(std::string_view text);

// A queue place's value.
struct PlaceValue {
  std::string execution_id;
  milliseconds ttl{0};
  std::optional<std::int64_t> expires_ns;
};
std::string to_text(const PlaceValue& place);
Result<PlaceValue> place_from_text(std::string_view text);

// A history entry's value.
std::string to_text(const Execution& e);
Result<Execution> execution_from_text(std::string_view text);

}  // namespace aec::etcd
