// The table a dynamodb:// store keeps its items in: its key schema checked against the layout
// the store needs (DescribeTable), and the table created when it is missing and the URL says
// create=true (on-demand billing; time to live on the expiry attribute where the endpoint has
// it: dynalite, the test server, does not).
#pragma once

#include <chrono>
#include <string>

#include <aec/status.h>

#include "stores/dynamodb/dynamo_client.h"

namespace aec::aws {

struct TableLayout {
  std::string partition_key;  // a string (S) attribute
  std::string sort_key;       // a string (S) attribute; empty: the table has a partition key only
  std::string ttl_attribute;  // epoch seconds (N) that DynamoDB's TTL deletes items by
};

// Checks that `table` exists, is ACTIVE (waiting up to `wait_active` for a table being created)
// and has the key schema of `layout`; creates it first when it is missing and `create` is set.
// Errors: NotFound for a missing table without `create` (saying how to create it);
// FailedPrecondition for a table whose keys differ (naming both schemas); DeadlineExceeded when
// it does not become ACTIVE in time; PermissionDenied when DynamoDB refuses the credentials;
// Unavailable when the endpoint cannot be reached.
Status ensure_table(DynamoClient& client, const std::string& table, const TableLayout& layout,
                    bool create, std::chrono::milliseconds wait_active);

// A DynamoDB error that is not an answer the store expects, as a Status naming the action and
// the table: AccessDeniedException and refused credentials PermissionDenied, a missing table
// NotFound, a validation error InvalidArgument, anything else Unavailable.
Status dynamo_status(std::string_view action, const std::string& table, const DynamoError& e);

}  // namespace aec::aws
