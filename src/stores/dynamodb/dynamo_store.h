// The `dynamodb://` store: a DynamoDB table (dynamo_url.h for the URL), shared by every process
// that names it, on any host, in any AWS service (Lambda, Fargate, EC2) or outside AWS.
//
// Layout (dynamo_items.h): per aec key one state item and one run item per execution.
//
// How the guarantees hold:
// - Every operation reads the key's state item (a strongly consistent GetItem), decides, and
//   writes the whole item back with a PutItem conditioned on its `rev` being the one read (or on
//   its absence, for a new key). When the condition fails the key changed meanwhile: read and
//   decide again. Two concurrent acquires never both take the last slot; a refused acquire with
//   nothing to record costs the read alone.
// - Fencing tokens: `last_token` of the state item, moved in the grant's own conditional write.
//   The state item is never deleted (purge deletes run items only, and the table's time to
//   live reads no attribute of it), so a token never repeats.
// - Expiry with no server clock (dynamo_sightings.h): a lease is taken over, and recorded Lost,
//   only by a process that has itself seen its record version unchanged for its whole ttl. A
//   process that has just started therefore waits a full ttl before it takes over a dead
//   holder's lease. Places in line lapse the same way after queue_ttl.
// - History: the grant's write, then the run item (put only if absent: a late copy never
//   overwrites the outcome); the release's write, then the run item with the outcome. Whoever
//   removes a lease from the state item writes its run's end; a process that finds a run
//   "running" whose lease is gone writes Lost only over "running". A process that dies between
//   the two writes leaves the run "running": readers show it Lost, and purge records it so.
// - A write with no answer (the connection dropped) is read back: the state item names the last
//   write that landed (write_id).
// - wait() polls the state item's version with jittered backoff (10 ms doubling to 500 ms):
//   DynamoDB has no notifications a client can wait on without a stream consumer.
// Thread-safe: the client and the sightings are.
#pragma once

#include <memory>
#include <string_view>

#include <aec/open_store.h>
#include <aec/store.h>

namespace aec {

// Opens the store `url` names: finds the region and credentials (aws_credentials.h), checks the
// table's keys, creating it first with create=true. Errors: InvalidArgument (a malformed URL or
// a bad ~/.aws file), NotFound (no table and no create=true), FailedPrecondition (a table with
// other keys), PermissionDenied (no credentials, or DynamoDB refused them), Unavailable (the
// endpoint cannot be reached).
Result<std::unique_ptr<Store>> open_dynamodb_store(std::string_view url,
                                                   const StoreOptions& options);

}  // namespace aec
