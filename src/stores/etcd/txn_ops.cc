#include "stores/etcd/txn_ops.h"

#include <fmt/format.h>

namespace aec::etcd {
namespace {

Compare compare(std::string_view key, Compare::CompareResult result,
                Compare::CompareTarget target) {
  Compare c;
  c.set_key(std::string(key));
  c.set_result(result);
  c.set_target(target);
  return c;
}

bool op_writes(const RequestOp& op) {
  switch (op.request_case()) {
    case RequestOp::kRequestPut:
    case RequestOp::kRequestDeleteRange:
      return true;
    case RequestOp::kRequestTxn:
      return writes(op.request_txn());
    case RequestOp::kRequestRange:
    case RequestOp::REQUEST_NOT_SET:
      return false;
  }
  return true;  // an unknown kind: assume the worst
}

}  // namespace

Compare compare_version(std::string_view key, Compare::CompareResult result, std::int64_t version) {
  Compare c = compare(key, result, Compare::VERSION);
  c.set_version(version);
  return c;
}

Compare compare_create(std::string_view key, Compare::CompareResult result, std::int64_t revision) {
  Compare c = compare(key, result, Compare::CREATE);
  c.set_create_revision(revision);
  return c;
}

Compare compare_mod(std::string_view key, Compare::CompareResult result, std::int64_t revision) {
  Compare c = compare(key, result, Compare::MOD);
  c.set_mod_revision(revision);
  return c;
}

Compare compare_value(std::string_view key, Compare::CompareResult result, std::string_view value) {
  Compare c = compare(key, result, Compare::VALUE);
  c.set_value(std::string(value));
  return c;
}

Compare compare_lease(std::string_view key, Compare::CompareResult result, std::int64_t lease) {
  Compare c = compare(key, result, Compare::LEASE);
  c.set_lease(lease);
  return c;
}

etcdserverpb::RangeRequest range_request(std::string_view key, std::string_view range_end,
                                         const RangeOptions& options) {
  etcdserverpb::RangeRequest r;
  r.set_key(std::string(key));
  r.set_range_end(std::string(range_end));
  r.set_limit(options.limit);
  r.set_revision(options.revision);
  r.set_keys_only(options.keys_only);
  r.set_count_only(options.count_only);
  r.set_serializable(options.serializable);
  r.set_sort_order(options.sort_order);
  r.set_sort_target(options.sort_target);
  return r;
}

etcdserverpb::PutRequest put_request(std::string_view key, std::string_view value,
                                     const PutOptions& options) {
  etcdserverpb::PutRequest r;
  r.set_key(std::string(key));
  r.set_value(std::string(value));
  r.set_lease(options.lease);
  r.set_prev_kv(options.prev_kv);
  return r;
}

etcdserverpb::DeleteRangeRequest delete_request(std::string_view key, std::string_view range_end,
                                                bool prev_kv) {
  etcdserverpb::DeleteRangeRequest r;
  r.set_key(std::string(key));
  r.set_range_end(std::string(range_end));
  r.set_prev_kv(prev_kv);
  return r;
}

RequestOp op_get(std::string_view key, std::string_view range_end, const RangeOptions& options) {
  RequestOp op;
  *op.mutable_request_range() = range_request(key, range_end, options);
  return op;
}

RequestOp op_put(std::string_view key, std::string_view value, const PutOptions& options) {
  RequestOp op;
  *op.mutable_request_put() = put_request(key, value, options);
  return op;
}

RequestOp op_delete(std::string_view key, std::string_view range_end, bool prev_kv) {
  RequestOp op;
  *op.mutable_request_delete_range() = delete_request(key, range_end, prev_kv);
  return op;
}

std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

Status check_answers(const TxnResponse& r, int n, std::string_view what) {
  if (r.responses_size() >= n) {
    return Status::ok();
  }
  return internal_error(
      fmt::format("etcd answered a transaction reading {} with {} result(s) "
                  "where {} were due: a broken answer",
                  what, r.responses_size(), n));
}

bool writes(const TxnRequest& request) {
  for (const RequestOp& op : request.success()) {
    if (op_writes(op)) {
      return true;
    }
  }
  for (const RequestOp& op : request.failure()) {
    if (op_writes(op)) {
      return true;
    }
  }
  return false;
}

}  // namespace aec::etcd
