// layout=aec-python: the lock item the dynamodb:// store shares with the Python
// atomic_execution_control library (dynamo_items.h, docs/dynamodb.md).
//
// Every caller of aec's decides on the key's state item as in the native layout, and a grant
// holds only once the lock item is written too, on the condition the Python library writes it
// with (absent), or that it is as read (FINISHED, or aec's expired lease): callers of aec's are
// kept apart by the state item, aec and the Python library by the lock item. Renewals refresh
// the lock item's updated_at, so that the library's clean-up never finds a live lease old.
#include <fmt/format.h>

#include "core/status_macros.h"
#include "stores/dynamodb/dynamo_store_impl.h"

namespace aec::aws {

using nlohmann::json;

Result<LockItem> DynamoStore::read_lock(const std::string& key) {
  json body = {
      {"TableName", url_.table}, {"Key", {{url_.key, attr_s(key)}}}, {"ConsistentRead", true}};
  AEC_ASSIGN_OR_RETURN(json answer, call("GetItem", body));
  return lock_from(answer.value("Item", json()), key);
}

Result<bool> DynamoStore::put_lock(const std::string& key, const LockItem& seen,
                                   const LockItem& next) {
  json body = {{"TableName", url_.table}, {"Item", lock_item(url_.key, key, next)}};
  if (!seen.exists) {
    body["ConditionExpression"] = "attribute_not_exists(#pk)";  // as the Python library does
    body["ExpressionAttributeNames"] = {{"#pk", url_.key}};
  } else if (seen.finished) {
    body["ConditionExpression"] = "#st = :fin";
    body["ExpressionAttributeNames"] = {{"#st", "status_execution"}};
    body["ExpressionAttributeValues"] = {{":fin", attr_s(kFinished)}};
  } else {
    // aec's lease that the state item no longer holds: taken over if still unrenewed.
    body["ConditionExpression"] = "#st = :inp AND #tok = :tok AND #rv = :rv";
    body["ExpressionAttributeNames"] = {
        {"#st", "status_execution"}, {"#tok", "aec_token"}, {"#rv", "aec_rv"}};
    body["ExpressionAttributeValues"] = {
        {":inp", attr_s(kInProgress)}, {":tok", attr_n(seen.token)}, {":rv", attr_s(seen.rv)}};
  }
  // No answer: the item names the write that landed.
  return write_lock(key, "PutItem", body, [&](const LockItem& back) -> std::optional<bool> {
    return back.exists && back.token == next.token && back.rv == next.rv;
  });
}

Result<bool> DynamoStore::write_lock(
    const std::string& key, std::string_view action, const json& body,
    const std::function<std::optional<bool>(const LockItem&)>& landed) {
  bool failed = false;
  Result<json> answer = call(action, body, &failed);
  if (answer) {
    return !failed;
  }
  if (answer.status().code() != Code::Unavailable) {
    return answer.error();
  }
  Result<LockItem> back = read_lock(key);
  if (!back) {
    return answer.error();
  }
  std::optional<bool> verdict = landed(*back);
  if (!verdict) {
    return answer.error();
  }
  return *verdict;
}

Result<bool> DynamoStore::touch_lock(const std::string& key, std::int64_t token, milliseconds ttl) {
  SysTime wall = clock_->system_now();
  json body = {{"TableName", url_.table},
               {"Key", {{url_.key, attr_s(key)}}},
               {"UpdateExpression", "SET #ua = :ua, #rv = :rv, #ttl = :ttl, #exp = :exp"},
               {"ConditionExpression", "#st = :inp AND #tok = :tok"},
               {"ExpressionAttributeNames",
                {{"#ua", "updated_at"},
                 {"#rv", "aec_rv"},
                 {"#ttl", "aec_ttl_ms"},
                 {"#exp", "expires_at"},
                 {"#st", "status_execution"},
                 {"#tok", "aec_token"}}},
               {"ExpressionAttributeValues",
                {{":ua", attr_s(python_time(wall))},
                 {":rv", attr_s(nonce())},
                 {":ttl", attr_n(ttl.count())},
                 {":exp", attr_n(epoch_seconds(wall + ttl))},
                 {":inp", attr_s(kInProgress)},
                 {":tok", attr_n(token)}}}};
  bool failed = false;
  AEC_RETURN_IF_ERROR(call("UpdateItem", body, &failed).status());
  return !failed;  // a renewal sent twice renews twice: no harm
}

Result<bool> DynamoStore::end_lock(const std::string& key, std::int64_t token, bool succeeded) {
  json body = {{"TableName", url_.table},
               {"Key", {{url_.key, attr_s(key)}}},
               {"ConditionExpression", "#st = :inp AND #tok = :tok"}};
  json names = {{"#st", "status_execution"}, {"#tok", "aec_token"}};
  json values = {{":inp", attr_s(kInProgress)}, {":tok", attr_n(token)}};
  std::string action = "DeleteItem";
  if (succeeded) {
    // FINISHED, as the Python library's update_status() writes it: its waiters return. The
    // expiry goes, so that the table's time to live leaves the item to the library's clean-up.
    action = "UpdateItem";
    body["UpdateExpression"] = "SET #st = :fin, #ua = :ua REMOVE #exp";
    names["#ua"] = "updated_at";
    names["#exp"] = "expires_at";
    values[":fin"] = attr_s(kFinished);
    values[":ua"] = attr_s(python_time(clock_->system_now()));
  }
  body["ExpressionAttributeNames"] = std::move(names);
  body["ExpressionAttributeValues"] = std::move(values);
  // No answer: landed if the item no longer holds this run in progress (by this write, most
  // likely); else not, and the caller may send the release again.
  return write_lock(key, action, body, [&](const LockItem& back) -> std::optional<bool> {
    if (back.exists && !back.finished && back.token == token) {
      return std::nullopt;
    }
    return true;
  });
}

Result<std::optional<Execution>> DynamoStore::drop_lock(const std::string& key) {
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    AEC_ASSIGN_OR_RETURN(LockItem lock, read_lock(key));
    if (!lock.exists || lock.finished) {
      return std::optional<Execution>();
    }
    // Deleted only as read: a new run of the Python library's is not taken for the old one.
    json body = {{"TableName", url_.table},
                 {"Key", {{url_.key, attr_s(key)}}},
                 {"ConditionExpression", "#st = :inp AND #ua = :ua"},
                 {"ExpressionAttributeNames", {{"#st", "status_execution"}, {"#ua", "updated_at"}}},
                 {"ExpressionAttributeValues",
                  {{":inp", attr_s(kInProgress)}, {":ua", attr_s(lock.updated_at)}}}};
    bool failed = false;
    AEC_RETURN_IF_ERROR(call("DeleteItem", body, &failed).status());
    if (!failed) {
      return lock.token == 0 ? std::optional<Execution>(lock_execution(key, lock))
                             : std::optional<Execution>();  // aec's: the state item says
    }
    backoff(attempt);
  }
  return contended(key);
}

Execution DynamoStore::lock_execution(const std::string& key, const LockItem& l) const {
  Execution e{.key = key,
              .status = l.finished ? ExecutionStatus::Succeeded : ExecutionStatus::Running};
  if (l.token > 0) {
    e.id = l.execution_id;
    e.token = l.token;
    e.owner.host = l.owner;
  } else {
    e.id = "python:" + l.created_at;
    e.owner.host = "python";  // the library records no owner
    e.reason = "held by the Python atomic_execution_control library";
  }
  if (std::optional<SysTime> at = parse_python_time(l.created_at)) {
    e.started_at = *at;
  }
  if (l.finished) {
    e.ended_at = parse_python_time(l.updated_at);
  }
  return e;
}

Status DynamoStore::withdraw(const std::string& key, std::int64_t token) {
  return edit_state(key, [&](KeyRecord& rec) {
    auto mine = find_lease(rec, token);
    if (mine == rec.leases.end()) {
      return false;
    }
    rec.leases.erase(mine);  // never started: no run item, as if never granted
    return true;
  });
}

}  // namespace aec::aws
