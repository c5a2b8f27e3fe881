#include "core/network_stores.h"

#include "stores/dynamodb/dynamo_store.h"
#include "stores/etcd/etcd_store.h"
#include "stores/http/http_store.h"
#include "stores/postgres/pg_store.h"

namespace aec {

Result<std::unique_ptr<Store>> open_network_store(std::string_view scheme, std::string_view url,
                                                  const StoreOptions& options) {
  if (scheme == "http" || scheme == "https") {
    return open_http_store(url, options);
  }
  if (scheme == "postgres" || scheme == "postgresql") {
    return open_postgres_store(url, options);
  }
  if (scheme == "etcd") {
    return open_etcd_store(url, options);
  }
  return open_dynamodb_store(url, options);
}

}  // namespace aec
