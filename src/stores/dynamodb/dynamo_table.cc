#include "stores/dynamodb/dynamo_table.h"

#include <map>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "core/status_macros.h"

namespace aec::aws {
namespace {

using nlohmann::json;

// "pk S HASH, sk S RANGE" for messages.
std::string describe(const TableLayout& l) {
  return l.sort_key.empty()
             ? fmt::format("{} (S, partition key)", l.partition_key)
             : fmt::format("{} (S, partition key), {} (S, sort key)", l.partition_key, l.sort_key);
}

// The table's key schema as DescribeTable gives it, in the same words.
std::string describe(const json& table) {
  std::map<std::string, std::string> types;
  for (const json& a : table.value("AttributeDefinitions", json::array())) {
    types[a.value("AttributeName", "")] = a.value("AttributeType", "");
  }
  std::vector<std::string> keys;
  for (const json& k : table.value("KeySchema", json::array())) {
    std::string name = k.value("AttributeName", "");
    keys.push_back(fmt::format("{} ({}, {} key)", name, types[name],
                               k.value("KeyType", "") == "HASH" ? "partition" : "sort"));
  }
  return fmt::format("{}", fmt::join(keys, ", "));
}

bool matches(const json& table, const TableLayout& l) {
  return describe(table) == describe(l);
}

Result<std::optional<json>> describe_table(DynamoClient& client, const std::string& table) {
  AEC_ASSIGN_OR_RETURN(DynamoAnswer a, client.call("DescribeTable", {{"TableName", table}}));
  if (a.error && a.error->type == "ResourceNotFoundException") {
    return std::optional<json>();
  }
  if (a.error) {
    return dynamo_status("DescribeTable", table, *a.error);
  }
  if (!a.body.contains("Table") || !a.body["Table"].is_object()) {
    return internal_error(fmt::format("DynamoDB DescribeTable of {} answered no Table", table));
  }
  return std::optional<json>(a.body["Table"]);
}

Status create_table(DynamoClient& client, const std::string& table, const TableLayout& l) {
  json attributes = json::array({{{"AttributeName", l.partition_key}, {"AttributeType", "S"}}});
  json keys = json::array({{{"AttributeName", l.partition_key}, {"KeyType", "HASH"}}});
  if (!l.sort_key.empty()) {
    attributes.push_back({{"AttributeName", l.sort_key}, {"AttributeType", "S"}});
    keys.push_back({{"AttributeName", l.sort_key}, {"KeyType", "RANGE"}});
  }
  AEC_ASSIGN_OR_RETURN(DynamoAnswer a,
                       client.call("CreateTable", {{"TableName", table},
                                                   {"AttributeDefinitions", attributes},
                                                   {"KeySchema", keys},
                                                   {"BillingMode", "PAY_PER_REQUEST"}}));
  if (a.error && a.error->type != "ResourceInUseException") {  // created by another meanwhile
    return dynamo_status("CreateTable", table, *a.error);
  }
  return Status::ok();
}

}  // namespace

Status dynamo_status(std::string_view action, const std::string& table, const DynamoError& e) {
  std::string what = fmt::format("DynamoDB {} on table {}: {}: {}", action, table, e.type,
                                 e.message.empty() ? "(no message)" : e.message);
  if (e.type == "AccessDeniedException" || e.type == "UnrecognizedClientException" ||
      e.type == "ExpiredTokenException" || e.type == "InvalidSignatureException" ||
      e.type == "MissingAuthenticationTokenException") {
    return Status(Code::PermissionDenied, what);
  }
  if (e.type == "ResourceNotFoundException") {
    return Status(Code::NotFound, what);
  }
  if (e.type == "ValidationException" || e.type == "SerializationException") {
    return invalid_argument(what);
  }
  return unavailable(what);
}

Status ensure_table(DynamoClient& client, const std::string& table, const TableLayout& layout,
                    bool create, std::chrono::milliseconds wait_active) {
  AEC_ASSIGN_OR_RETURN(std::optional<json> found, describe_table(client, table));
  if (!found && !create) {
    return Status(
        Code::NotFound,
        fmt::format("DynamoDB table {} does not exist in {} at {}: add create=true to "
                    "the store URL, or create it with the keys {}",
                    table, client.options().region, client.options().endpoint, describe(layout)));
  }
  if (!found) {
    AEC_RETURN_IF_ERROR(create_table(client, table, layout));
  }
  auto until = std::chrono::steady_clock::now() + wait_active;
  for (;;) {
    if (found && !matches(*found, layout)) {
      return Status(Code::FailedPrecondition,
                    fmt::format("DynamoDB table {} has the keys {}; this store needs {}: use "
                                "another table, or the layout= and key= that fit it",
                                table, describe(*found), describe(layout)));
    }
    if (found && found->value("TableStatus", "") == "ACTIVE") {
      break;
    }
    if (std::chrono::steady_clock::now() >= until) {
      return Status(
          Code::DeadlineExceeded,
          fmt::format("DynamoDB table {} is not ACTIVE after {} s (status {})", table,
                      std::chrono::duration_cast<std::chrono::seconds>(wait_active).count(),
                      found ? found->value("TableStatus", "?") : "missing"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // DynamoDB has no wait call
    AEC_ASSIGN_OR_RETURN(found, describe_table(client, table));
  }
  if (!layout.ttl_attribute.empty() && create) {
    AEC_ASSIGN_OR_RETURN(
        DynamoAnswer a,
        client.call("UpdateTimeToLive",
                    {{"TableName", table},
                     {"TimeToLiveSpecification",
                      {{"AttributeName", layout.ttl_attribute}, {"Enabled", true}}}}));
    // Already on (ValidationException "TimeToLive is already enabled"), or an endpoint without
    // it (dynalite: UnknownOperationException): expired items then stay until aec purges them.
    if (a.error && a.error->type != "ValidationException" &&
        a.error->type != "UnknownOperationException") {
      return dynamo_status("UpdateTimeToLive", table, *a.error);
    }
  }
  return Status::ok();
}

}  // namespace aec::aws
