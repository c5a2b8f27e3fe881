// F4: what the store clients read from their servers. A hostile or broken server's answer must
// give an error, never a crash, a hang or undefined behaviour.
//
// Input: a mode byte, a selector byte, then the payload.
//   'W' aecd's JSON answers (api/wire.h decode_*; selector: which answer), parsed as the http://
//       store parses them. A decoded answer must survive encode -> decode unchanged.
//   'H' the real http:// store (stores/http/) against FakeAecd, which answers every request with
//       the payload as body; the selector picks the store call, the first two payload bytes the
//       HTTP status.
//   'J' the etcd store's values (etcd_records.h: meta, lease, queue place, history entry) and
//       its key layout (Layout::part_of). A decoded value must survive to_text -> decode.
//   'B' etcd's protobuf responses (ParseFromString; selector: which message), then every key and
//       value in them through the layout and value decoders, as the store reads them.
//   'G' the real etcd client and the store's key readers (read_snapshot, read_entries,
//       plan_reap) against FakeEtcd, which answers every Txn with the payload (a TxnResponse).
//   'Y' a DynamoDB item as the dynamodb:// store reads it (dynamo_items.h; selector: a state
//       item, a run record, or layout=aec-python's lock item). A decoded item must survive
//       encode -> decode unchanged, and a lock item's times parse back to what they say.
// Every error must be a non-empty single line (aec::Status's contract).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <fmt/format.h>

#include <aec/open_store.h>

#include "api/wire.h"
#include "stores/dynamodb/dynamo_items.h"
#include "stores/etcd/etcd_client.h"
#include "stores/etcd/etcd_key_state.h"
#include "stores/etcd/etcd_records.h"
#include "stores/http/http_store.h"
#include "tests/fuzz/fake_aecd.h"
#include "tests/fuzz/fake_etcd.h"
#include "tests/fuzz/fuzz_check.h"

namespace aec::fuzz {
namespace {

using nlohmann::json;

template <typename T>
void check_error(const Result<T>& r, std::string_view what) {
  if (!r) {
    check_one_line_error(r.error(), what);
  }
}

// ---- 'W': aecd's answers ----

// decode(j), and when it decodes, encode -> text -> decode -> encode gives the same text.
template <typename T, typename D, typename E>
void wire_round_trip(const json& j, std::string_view what, D decode, E encode) {
  Result<T> v = decode(j);
  if (!v) {
    AEC_FUZZ_CHECK(v.error().code() == Code::InvalidArgument, v.error().to_string());
    check_one_line_error(v.error(), what);
    return;
  }
  std::string text = wire::to_text(encode(*v));
  Result<json> again = wire::parse_object(text);
  AEC_FUZZ_CHECK(again.has_value(), text);
  Result<T> v2 = decode(*again);
  AEC_FUZZ_CHECK(v2.has_value(), fmt::format("{}: {} -> {}", what, text, v2.error().to_string()));
  std::string text2 = wire::to_text(encode(*v2));
  AEC_FUZZ_CHECK(text == text2, fmt::format("{}: {} -> {}", what, text, text2));
}

void aecd_answer(std::uint8_t which, std::string_view body) {
  Result<json> j = wire::parse_object(body);
  if (!j) {
    check_one_line_error(j.error(), "answer");
    return;
  }
  auto enc = [](const auto& v) { return wire::encode(v); };
  switch (which % 8) {
    case 0:
      return wire_round_trip<AcquireResult>(*j, "acquire", wire::decode_acquire_result, enc);
    case 1:
      return wire_round_trip<LeaseOutcome>(*j, "lease outcome", wire::decode_lease_outcome, enc);
    case 2:
      return wire_round_trip<KeyState>(*j, "key state", wire::decode_key_state, enc);
    case 3:
      return wire_round_trip<wire::ExecutionPage>(
          *j, "executions", wire::decode_execution_page, [](const wire::ExecutionPage& p) {
            return wire::encode_executions(p.executions, p.next_offset);
          });
    case 4:
      return wire_round_trip<ForceReleaseResult>(*j, "force release",
                                                 wire::decode_force_release_result, enc);
    case 5:
      return wire_round_trip<PurgeResult>(*j, "purge", wire::decode_purge_result, enc);
    case 6:
      return wire_round_trip<Execution>(
          *j, "execution", [](const json& v) { return wire::decode_execution(v); }, enc);
    default:
      (void)wire::decode_error(*j);
      return;
  }
}

// ---- 'H': the http:// store against FakeAecd ----

struct HttpPair {
  FakeAecd server;
  std::unique_ptr<Store> store;
};

HttpPair& http_pair() {
  static HttpPair* pair = [] {
    auto* p = new HttpPair;
    auto store = open_http_store(fmt::format("http://127.0.0.1:{}", p->server.port()), {},
                                 {.connect_timeout = milliseconds(500),
                                  .request_timeout = milliseconds(900),
                                  .retry_budget = milliseconds(0),
                                  .token = std::string("fuzz-token")});
    AEC_FUZZ_CHECK(store.has_value(), store.error().to_string());
    p->store = std::move(*store);
    return p;
  }();
  return *pair;
}

// An HTTP status for the answer: 200 half the time, else 200-599 (not 204 or 304, which carry
// no body, nor 1xx, which are not final).
int http_status(std::uint8_t hi, std::uint8_t lo) {
  int status = hi < 128 ? 200 : 200 + (hi * 256 + lo) % 400;
  return status == 204 || status == 304 ? 200 : status;
}

void http_store_answer(std::uint8_t which, std::string_view payload) {
  if (payload.size() < 2) {
    return;
  }
  HttpPair& pair = http_pair();
  pair.server.answer(
      http_status(static_cast<std::uint8_t>(payload[0]), static_cast<std::uint8_t>(payload[1])),
      std::string(payload.substr(2)));
  Store& store = *pair.store;
  switch (which % 9) {
    case 0:
      return check_error(store.acquire({.key = "k", .execution_id = "e", .queue = true}), "acq");
    case 1:
      return check_error(store.renew("k", 1, milliseconds(1000)), "renew");
    case 2:
      return check_error(store.release("k", 1, {.status = ExecutionStatus::Succeeded}), "release");
    case 3:
      return check_error(store.get("k"), "get");
    case 4:
      return check_error(store.list({.limit = 2500}), "list");
    case 5:
      return check_error(store.wait("k", 1, MonoTime{}, {}), "wait");
    case 6:
      return check_error(store.force_release("k", "fuzz", {}), "force release");
    case 7:
      return check_error(store.purge({}), "purge");
    default: {
      Status s = store.leave_queue("k", "e");
      if (!s.is_ok()) {
        check_one_line_error(s, "leave queue");
      }
      return;
    }
  }
}

// ---- 'J' and 'B': the etcd store's values and layout ----

const etcd::Layout& layout() {
  static const etcd::Layout l("aec/");
  return l;
}

template <typename T, typename F>
void record_round_trip(std::string_view text, std::string_view what, F from_text) {
  Result<T> v = from_text(text);
  if (!v) {
    AEC_FUZZ_CHECK(v.error().code() == Code::DataLoss, v.error().to_string());
    check_one_line_error(v.error(), what);
    return;
  }
  std::string once = etcd::to_text(*v);
  Result<T> again = from_text(once);
  AEC_FUZZ_CHECK(again.has_value(), fmt::format("{}: {}", what, once));
  std::string twice = etcd::to_text(*again);
  AEC_FUZZ_CHECK(once == twice, fmt::format("{}: {} -> {}", what, once, twice));
}

void etcd_value(std::uint8_t which, std::string_view text) {
  switch (which % 4) {
    case 0:
      return record_round_trip<etcd::Meta>(text, "meta", etcd::meta_from_text);
    case 1:
      return record_round_trip<etcd::LeaseValue>(text, "lease", etcd::lease_from_text);
    case 2:
      return record_round_trip<etcd::PlaceValue>(text, "place", etcd::place_from_text);
    default:
      return record_round_trip<Execution>(text, "execution", etcd::execution_from_text);
  }
}

// A key and value read from etcd, decoded as the store decodes what it finds there.
void etcd_pair(const mvccpb::KeyValue& kv) {
  std::optional<etcd::Layout::Part> part = layout().part_of(kv.key());
  if (part) {
    std::optional<etcd::Layout::Part> back = layout().part_of(layout().meta(part->key));
    AEC_FUZZ_CHECK(back && back->key == part->key && back->what == "meta",
                   fmt::format("layout of {:?}", part->key));
    if (part->what == "meta") {
      etcd_value(0, kv.value());
    } else if (part->what.starts_with("l/")) {
      etcd_value(1, kv.value());
    } else if (part->what.starts_with("q/")) {
      etcd_value(2, kv.value());
    }
  } else if (kv.key().starts_with(layout().history(""))) {
    etcd_value(3, kv.value());
  }
}

void etcd_range(const etcdserverpb::RangeResponse& r) {
  for (const mvccpb::KeyValue& kv : r.kvs()) {
    etcd_pair(kv);
  }
}

void etcd_message(std::uint8_t which, std::string_view bytes) {
  std::string data(bytes);
  switch (which % 5) {
    case 0: {
      etcdserverpb::TxnResponse m;
      if (m.ParseFromString(data)) {
        for (const etcdserverpb::ResponseOp& op : m.responses()) {
          etcd_range(op.response_range());
          if (op.response_put().has_prev_kv()) {
            etcd_pair(op.response_put().prev_kv());
          }
          for (const mvccpb::KeyValue& kv : op.response_delete_range().prev_kvs()) {
            etcd_pair(kv);
          }
        }
      }
      return;
    }
    case 1: {
      etcdserverpb::RangeResponse m;
      if (m.ParseFromString(data)) {
        etcd_range(m);
      }
      return;
    }
    case 2: {
      etcdserverpb::WatchResponse m;
      if (m.ParseFromString(data)) {
        for (const mvccpb::Event& e : m.events()) {
          etcd_pair(e.kv());
          etcd_pair(e.prev_kv());
        }
      }
      return;
    }
    case 3: {
      etcdserverpb::DeleteRangeResponse m;
      if (m.ParseFromString(data)) {
        for (const mvccpb::KeyValue& kv : m.prev_kvs()) {
          etcd_pair(kv);
        }
      }
      return;
    }
    default: {
      etcdserverpb::LeaseTimeToLiveResponse m;
      (void)m.ParseFromString(data);
      return;
    }
  }
}

// ---- 'G': the etcd client and the key readers against FakeEtcd ----

struct EtcdPair {
  FakeEtcd server;
  std::unique_ptr<etcd::Client> client;
};

EtcdPair& etcd_pair_of_fakes() {
  static EtcdPair* pair = [] {
    auto* p = new EtcdPair;
    auto client = etcd::Client::connect({p->server.endpoint()}, {.dial_timeout = milliseconds(5000),
                                                                 .rpc_timeout = milliseconds(900)});
    AEC_FUZZ_CHECK(client.has_value(), client.error().to_string());
    p->client = std::move(*client);
    return p;
  }();
  return *pair;
}

void etcd_reader(std::uint8_t which, std::string_view bytes) {
  etcdserverpb::TxnResponse txn;
  if (!txn.ParseFromString(std::string(bytes))) {
    return;
  }
  EtcdPair& pair = etcd_pair_of_fakes();
  pair.server.answer(txn, {});
  const etcd::Client& client = *pair.client;
  switch (which % 3) {
    case 0:
      return check_error(etcd::read_snapshot(client, layout(), "k"), "read_snapshot");
    case 1:
      return check_error(etcd::read_entries(client, layout(), "k", {1, 2, 3}, 7), "read_entries");
    default: {
      Result<etcd::KeySnapshot> snap = etcd::read_snapshot(client, layout(), "k");
      if (!snap) {
        return check_one_line_error(snap.error(), "read_snapshot");
      }
      etcd::WritePlan plan = etcd::WritePlan::guarded(layout(), *snap);
      Status s = etcd::plan_reap(client, layout(), *snap, {.manual = true, .now_ns = 1000},
                                 SysTime{}, plan);
      if (!s.is_ok()) {
        check_one_line_error(s, "plan_reap");
      }
      return;
    }
  }
}

// `item` through `decode`: an error is DataLoss in one line; a decoded value must survive
// encode -> decode unchanged. Returns the decoded value.
template <typename Decode, typename Encode>
auto round_trip(const json& item, const char* what, Decode decode, Encode encode) {
  auto got = decode(item);
  if (!got) {
    AEC_FUZZ_CHECK(got.error().code() == Code::DataLoss, got.error().to_string());
    check_one_line_error(got.error(), what);
    return got;
  }
  std::string text = encode(*got).dump();
  auto again = decode(json::parse(text));
  AEC_FUZZ_CHECK(again.has_value(), text + ": " + again.error().to_string());
  AEC_FUZZ_CHECK(encode(*again).dump() == text, text);
  return got;
}

void dynamo_item(std::uint8_t which, std::string_view body) {
  json item = json::parse(body, nullptr, false);
  if (item.is_discarded()) {
    return;
  }
  switch (which % 3) {
    case 0:
      (void)round_trip(
          item, "state item", [](const json& j) { return aws::state_from(j, "k"); },
          [](const aws::KeyRecord& r) { return aws::state_item("pk", "k", r); });
      return;
    case 1:
      (void)round_trip(
          item, "run record", [](const json& j) { return aws::record_from(j, "k", "run"); },
          [](const aws::RunRecord& r) { return aws::record_attributes(r); });
      return;
    default: {
      auto lock = round_trip(
          item, "lock item", [](const json& j) { return aws::lock_from(j, "k"); },
          [](const aws::LockItem& l) { return aws::lock_item("pk", "k", l); });
      if (lock) {
        if (std::optional<SysTime> t = aws::parse_python_time(lock->updated_at)) {
          AEC_FUZZ_CHECK(aws::python_time(*t) == lock->updated_at, lock->updated_at);
        }
      }
      return;
    }
  }
}

}  // namespace
}  // namespace aec::fuzz

namespace aec::fuzz {
namespace {

void fuzz_one(char mode, std::uint8_t which, std::string_view payload) {
  switch (mode) {
    case 'W':
      aecd_answer(which, payload);
      break;
    case 'H':
      http_store_answer(which, payload);
      break;
    case 'J':
      if (which % 5 == 4) {
        (void)layout().part_of(payload);
      } else {
        etcd_value(which, payload);
      }
      break;
    case 'B':
      etcd_message(which, payload);
      break;
    case 'Y':
      dynamo_item(which, payload);
      break;
    default:
      etcd_reader(which, payload);
      break;
  }
}

}  // namespace
}  // namespace aec::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace aec::fuzz;
  if (size < 2) {
    return 0;
  }
  static constexpr std::string_view kModes = "WHJBGY";
  char mode = kModes.find(static_cast<char>(data[0])) != std::string_view::npos
                  ? static_cast<char>(data[0])
                  : kModes[data[0] % kModes.size()];
  std::uint8_t which = data[1];
  std::string_view payload = as_text(data + 2, size - 2);
  fuzz_one(mode, which, payload);  // an exception escapes: a crash
  return 0;
}
