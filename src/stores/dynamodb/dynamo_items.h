// The items of the dynamodb:// store's native layout, and DynamoDB's attribute-value JSON
// ({"S": "..."}, {"N": "12"}, {"M": {...}}, {"L": [...]}).
//
// Per aec key, in a table keyed by (partition key, sk):
//   state item  (KEY, "#state")      the key's counters, live leases, line of waiters, version,
//                                    and its last ended and last succeeded execution: every
//                                    decision on the key is a read of this one item and a
//                                    conditional write of it (condition: rev unchanged)
//   run items   (KEY, "run#TOKEN")   one per granted execution, and (KEY, "run#TOKEN#SEQ") for
//                                    one skipped while TOKEN was the key's last token; numbers
//                                    in 20 digits, so that a Query of the key newest first is
//                                    its history newest first, and a token finds its run
// The state item is never deleted (it holds the token counter) and carries no top-level
// expires_at, so the table's time to live never touches it; each lease inside it carries its
// wall-clock expires_at for readers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <aec/execution.h>
#include <aec/status.h>

namespace aec::aws {

inline constexpr std::string_view kSortKey = "sk";
inline constexpr std::string_view kStateSort = "#state";
inline constexpr std::string_view kRunPrefix = "run#";

// One execution as the store keeps it: in a run item, or as a map inside the state item.
struct RunRecord {
  Execution execution;
  std::string sort_key;    // its run item's (run_sort_key)
  std::int64_t order = 0;  // microseconds since the epoch, unique per writer: newest first
                           // across keys (list() without a key)
};

// A live lease in the state item. Its record version `rv` is new at every grant and renewal: a
// contender that sees it unchanged for `ttl` on its own clock may take the lease over.
struct LeaseEntry {
  RunRecord run;
  std::string rv;
  milliseconds ttl{0};
  std::int64_t expires_at = 0;  // epoch seconds, by the writer's wall clock: for people only
};

// A waiter's place in the key's line; `rv` is new each time the waiter asks again.
struct PlaceEntry {
  std::string execution_id;
  std::string rv;
  milliseconds queue_ttl{0};
};

struct KeyRecord {
  bool exists = false;       // the item was there when read
  std::int64_t rev = 0;      // moves at every write of the item: the write condition
  std::int64_t version = 0;  // KeyState::version (holders and history changes only)
  std::int64_t last_token = 0;
  std::int64_t seq = 0;  // counts skipped runs (their sort keys)
  std::string write_id;  // a nonce of the last write, to learn whether an unanswered one landed
  std::vector<LeaseEntry> leases;  // oldest first
  std::vector<PlaceEntry> queue;   // first in line first
  std::optional<RunRecord> last_ended;
  std::optional<RunRecord> last_succeeded;
};

// Attribute values.
nlohmann::json attr_s(std::string_view s);
nlohmann::json attr_n(std::int64_t n);

// A run item's sort key: "run#TOKEN" for a grant; "run#LAST_TOKEN#SEQ" for a skipped run.
std::string run_sort_key(std::int64_t token);
std::string skipped_sort_key(std::int64_t last_token, std::int64_t seq);

// A record's attributes, for a run item (with its keys added) or a map in the state item.
nlohmann::json record_attributes(const RunRecord& r);
// The record in an item or map. DataLoss naming `where` and the attribute when one is missing or
// of the wrong type. The key is not read from the item: it is given.
Result<RunRecord> record_from(const nlohmann::json& attrs, std::string_view key,
                              std::string_view where);

// The state item of `key` with `partition_key` as the partition key's name.
nlohmann::json state_item(std::string_view partition_key, std::string_view key,
                          const KeyRecord& rec);
// The state item as read (GetItem's "Item"); a missing item gives exists = false.
Result<KeyRecord> state_from(const nlohmann::json& item, std::string_view key);

// layout=aec-python (docs/dynamodb.md): the table of the Python atomic_execution_control library
// (v0.1.5), keyed by one string attribute. Per aec key:
//   lock item   (KEY)                          the Python library's own item, which aec writes
//                                              too (LockItem); whoever holds it runs
//   state item  ("aec#state#" KEY)             the native state item above, at another key
//   run items   ("aec#run#TOKEN#" KEY,         the native run items above, likewise; each also
//                "aec#skip#TOKEN#SEQ#" KEY)    carries its sort key (sk) and its key (aec_key)
// The Python library never reads or deletes aec's items (it names only the keys it is given),
// and aec refuses keys starting "aec#" in this layout, so the two kinds never meet.
inline constexpr std::string_view kPythonPrefix = "aec#";
inline constexpr std::string_view kInProgress = "IN_PROGRESS";
inline constexpr std::string_view kFinished = "FINISHED";

inline constexpr std::string_view kAecKey = "aec_key";

// The partition-key value of aec's item `sort_key` (kStateSort, a run sort key) of `key`: one
// value per (key, sort key), whatever the key holds.
std::string python_item_key(std::string_view key, std::string_view sort_key);

// The lock item: {KEY, status_execution, created_at, updated_at} as the Python library writes
// it, and aec's attributes while aec holds it (or held it last, when FINISHED).
struct LockItem {
  bool exists = false;
  bool finished = false;   // status_execution FINISHED (else IN_PROGRESS)
  std::string created_at;  // python_time() of the acquire, as written
  std::string updated_at;  // python_time() of the last acquire, renewal or finish
  // aec's attributes; token 0 when the item is the Python library's alone.
  std::int64_t token = 0;
  std::string execution_id;
  std::string rv;  // new at every write of aec's: a renewal shows its holder lives
  milliseconds ttl{0};
  std::string owner;            // HOST:PID, for people
  std::int64_t expires_at = 0;  // epoch seconds, by the writer's wall clock: for people only
};

// `t` in this host's local time as the Python library writes it: "%Y-%m-%dT%H:%M:%S.%f" (six
// fraction digits, no zone; the library cannot read a value without them).
std::string python_time(SysTime t);
// A python_time() back (local time); nullopt for anything else.
std::optional<SysTime> parse_python_time(std::string_view s);

nlohmann::json lock_item(std::string_view partition_key, std::string_view key, const LockItem& l);
// The lock item as read; a missing item gives exists = false. DataLoss for a status the Python
// library does not write, or aec attributes that are incomplete.
Result<LockItem> lock_from(const nlohmann::json& item, std::string_view key);

}  // namespace aec::aws
