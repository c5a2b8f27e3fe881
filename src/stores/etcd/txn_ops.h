// Builders for the requests of etcd's KV API and the parts of a transaction, named as etcd's Go
// client (clientv3) names them: a txn is TxnRequest{compare..., success..., failure...}.
//
//   TxnRequest t;
//   *t.add_compare() = compare_version("k", Compare::EQUAL, 0);  // "k" does not exist
//   *t.add_success() = op_put("k", "v");
//   *t.add_failure() = op_get("k");
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "stores/etcd/etcd_client.h"

namespace aec::etcd {

// Compares the key's version (0: the key does not exist), create or mod revision, value, or
// lease id (0: none) with `result` (EQUAL, NOT_EQUAL, GREATER, LESS): key's field <op> operand.
Compare compare_version(std::string_view key, Compare::CompareResult result, std::int64_t version);
Compare compare_create(std::string_view key, Compare::CompareResult result, std::int64_t revision);
Compare compare_mod(std::string_view key, Compare::CompareResult result, std::int64_t revision);
Compare compare_value(std::string_view key, Compare::CompareResult result, std::string_view value);
Compare compare_lease(std::string_view key, Compare::CompareResult result, std::int64_t lease);

etcdserverpb::RangeRequest range_request(std::string_view key, std::string_view range_end,
                                         const RangeOptions& options);
etcdserverpb::PutRequest put_request(std::string_view key, std::string_view value,
                                     const PutOptions& options);
etcdserverpb::DeleteRangeRequest delete_request(std::string_view key, std::string_view range_end,
                                                bool prev_kv);

RequestOp op_get(std::string_view key, std::string_view range_end = {},
                 const RangeOptions& options = {});
RequestOp op_put(std::string_view key, std::string_view value, const PutOptions& options = {});
RequestOp op_delete(std::string_view key, std::string_view range_end = {}, bool prev_kv = false);

// The range_end that covers every key starting with `prefix` (clientv3's GetPrefixRangeEnd):
// the prefix with its last byte below 0xff incremented and what follows dropped; "\0" (every
// key) when there is no such byte.
std::string prefix_end(std::string_view prefix);

// Ok when `r` holds at least `n` answers; else Internal naming `what` was read. etcd answers every
// operation of the branch it ran, in order: fewer answers is a broken server (or proxy), and
// reading the missing ones would overrun the list.
Status check_answers(const TxnResponse& r, int n, std::string_view what);

// True when the transaction can change the store: a put or delete in either branch, nested
// transactions included.
bool writes(const TxnRequest& request);

}  // namespace aec::etcd
