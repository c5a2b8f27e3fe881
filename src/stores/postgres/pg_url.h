// The URL of a PostgreSQL store:
//
//   postgres://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE[?PARAM=VALUE&...]   (or postgresql://)
//
// aec's own parameters (taken out before the rest goes to libpq):
//   schema=NAME          the schema that holds aec's tables and functions (default aec)
//   pool=N               at most N connections per store (default 8)
//   pooler=transaction   the connections come from a transaction-mode pooler (pgbouncer):
//                        no named prepared statements and no LISTEN on them
//   listen=URL           a percent-encoded postgres URL for the one connection that LISTENs for
//                        changes (a direct server or a session-mode pool); with
//                        pooler=transaction and no listen=, waits poll instead
// Every other parameter is libpq's (sslmode, connect_timeout, application_name, ...).
#pragma once

#include <string>
#include <string_view>

#include <aec/status.h>

namespace aec::pg {

struct PgUrl {
  std::string conninfo;  // the URL libpq connects with (aec's parameters removed)
  std::string listen;    // the conninfo of the LISTEN connection; empty: poll
  std::string schema = "aec";
  int pool = 8;
  bool pooled = false;  // pooler=transaction
  std::string display;  // the URL as given, password replaced by ***
};

// Parses `url`. InvalidArgument naming the URL and what is wrong: another scheme, a bad schema
// name or pool size, an unknown pooler mode, or whatever libpq rejects in the rest.
Result<PgUrl> parse_pg_url(std::string_view url);

}  // namespace aec::pg
