// The URL of an etcd store:
//
//   etcd://HOST:PORT[,HOST:PORT...][?prefix=P&dial_timeout=D&rpc_timeout=D]
//
//   prefix=P         every key aec writes starts with P (default "aec/"); several aec
//                    installations can share one cluster under different prefixes
//   dial_timeout=D   how long opening the store waits for a member (default 5s)
//   rpc_timeout=D    the deadline of each call to the cluster (default 5s)
// Durations as aec reads them everywhere ("500ms", "5s"). No credentials, no TLS yet.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <aec/clock.h>
#include <aec/status.h>

namespace aec::etcd {

struct EtcdUrl {
  std::vector<std::string> endpoints;  // "host:port", at least one
  std::string prefix = "aec/";
  milliseconds dial_timeout{5000};
  milliseconds rpc_timeout{5000};
  std::string display;  // the URL as given (it carries no credentials)
};

// Parses `url`. InvalidArgument, one line naming the URL, what is wrong and what to write: another
// scheme, no endpoint, a malformed endpoint, an unknown parameter, a bad duration or an empty
// prefix.
Result<EtcdUrl> parse_etcd_url(std::string_view url);

}  // namespace aec::etcd
