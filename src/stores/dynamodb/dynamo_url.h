// The URL of a DynamoDB store:
//
//   dynamodb://TABLE[?region=R&endpoint=URL&profile=P&key=NAME&create=true]
//
//   region=R        the AWS region (default: $AWS_REGION, $AWS_DEFAULT_REGION, the profile's
//                   region, else eu-west-1)
//   endpoint=URL    http(s)://HOST[:PORT] of a DynamoDB-compatible endpoint (a local DynamoDB,
//                   dynalite); default https://dynamodb.REGION.amazonaws.com
//   profile=P       take credentials and region from this profile of ~/.aws alone
//   key=NAME        the table's partition-key attribute (default pk)
//   create=true     create the table when it is missing (on-demand billing, time to live on
//                   expires_at); default false: a missing table is an error
//   layout=L        the items' layout (docs/dynamodb.md): native (default), or aec-python to
//                   share the table of the Python atomic_execution_control library (a table
//                   with a partition key only: key= names it, as the library's primary_key)
// Values may be percent-encoded.
#pragma once

#include <string>
#include <string_view>

#include <aec/status.h>

namespace aec::aws {

struct DynamoUrl {
  std::string table;
  std::string region;    // empty: find it the way AWS tools do (aws_credentials.h)
  std::string endpoint;  // empty: AWS's endpoint for the region
  std::string profile;
  std::string key = "pk";
  bool create = false;
  bool python = false;  // layout=aec-python
  std::string display;  // the URL as given (it carries no secret)
};

// Parses `url`. InvalidArgument, one line naming the URL, what is wrong and what to write: another
// scheme, a table name DynamoDB would refuse, an unknown parameter or a bad value.
Result<DynamoUrl> parse_dynamo_url(std::string_view url);

// The endpoint a store sends to: `url.endpoint`, or AWS's own for `region`.
std::string endpoint_for(const DynamoUrl& url, std::string_view region);

}  // namespace aec::aws
