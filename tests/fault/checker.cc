#include "tests/fault/checker.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

namespace aec::fault {
namespace {

constexpr std::int64_t kForever = std::numeric_limits<std::int64_t>::max();

double ms(std::int64_t ns) {
  return static_cast<double>(ns) / 1e6;
}

// One call of a client: its Invoke and the answer that followed it (none if the run ended first).
struct Call {
  std::string op;
  std::string key;
  std::int64_t token = 0;  // renew/release: the token sent; acquire: the token granted
  std::int64_t ttl_ns = 0;
  int client = 0;
  std::int64_t sent = 0;
  std::int64_t answered = kForever;
  EventKind outcome = EventKind::Info;
};

std::vector<Call> pair_calls(const std::vector<Event>& events, CheckReport& report) {
  std::vector<Call> calls;
  std::map<int, std::size_t> open;  // client -> index of its call awaiting an answer
  for (const Event& e : events) {
    if (e.kind == EventKind::Invoke) {
      Call c;
      c.op = e.op;
      c.key = e.key;
      c.token = e.token;
      c.ttl_ns = e.op == "acquire" || e.op == "renew" ? e.value * 1'000'000 : 0;
      c.client = e.client;
      c.sent = e.t;
      open[e.client] = calls.size();
      calls.push_back(std::move(c));
    } else if (e.kind == EventKind::Ok || e.kind == EventKind::Fail || e.kind == EventKind::Info) {
      auto it = open.find(e.client);
      if (it == open.end()) {
        report.violations.push_back("client " + std::to_string(e.client) + ": an answer to " +
                                    e.op + " on " + e.key + " with no call");
        continue;
      }
      Call& c = calls[it->second];
      c.answered = e.t;
      c.outcome = e.kind;
      if (c.op == "acquire" && e.kind == EventKind::Ok) {
        c.token = e.token;
      }
      open.erase(it);
    }
  }
  report.calls = static_cast<std::int64_t>(calls.size());
  for (const Call& c : calls) {
    if (c.answered == kForever) {
      ++report.unanswered;
    } else if (c.outcome == EventKind::Info) {
      ++report.indeterminate;
    }
  }
  return calls;
}

// The grant of a lease and what its holder saw of it afterwards.
struct Lease {
  std::string key;
  std::int64_t token = 0;
  std::int64_t granted = 0;          // the grant's answer arrived
  std::int64_t lower_end = 0;        // it lives at least until here (last good send + ttl)
  std::int64_t release = kForever;   // its release was sent
  std::int64_t released = kForever;  // its release was answered Ok
};

void check_tokens(const std::vector<Call>& grants, CheckReport& report) {
  std::map<std::string, std::vector<const Call*>> by_key;
  for (const Call& c : grants) {
    by_key[c.key].push_back(&c);
  }
  for (auto& [key, list] : by_key) {
    std::set<std::int64_t> seen;
    for (const Call* c : list) {
      if (!seen.insert(c->token).second) {
        report.violations.push_back("I1 " + key + ": token " + std::to_string(c->token) +
                                    " granted twice");
      }
    }
    // Real-time order: every grant answered before a call was sent has a smaller token.
    std::vector<const Call*> by_answer = list;
    std::sort(by_answer.begin(), by_answer.end(),
              [](const Call* a, const Call* b) { return a->answered < b->answered; });
    std::sort(list.begin(), list.end(),
              [](const Call* a, const Call* b) { return a->sent < b->sent; });
    std::size_t i = 0;
    const Call* highest = nullptr;
    for (const Call* c : list) {
      for (; i < by_answer.size() && by_answer[i]->answered < c->sent; ++i) {
        if (highest == nullptr || by_answer[i]->token > highest->token) {
          highest = by_answer[i];
        }
      }
      if (highest != nullptr && highest->token >= c->token) {
        std::ostringstream out;
        out << "I1 " << key << ": token " << c->token << " granted to client " << c->client
            << " (sent at " << ms(c->sent) << " ms) after token " << highest->token
            << " was granted to client " << highest->client << " at " << ms(highest->answered)
            << " ms";
        report.violations.push_back(out.str());
      }
    }
  }
}

}  // namespace

CheckReport check_calls(const std::vector<Event>& events,
                        const std::map<std::string, int>& limits) {
  CheckReport report;
  std::vector<Call> calls = pair_calls(events, report);
  // Every release's send, per lease, to explain a "not held" answered after it (a release and
  // a renewal of one lease may race: whichever the store takes first decides the other).
  std::map<std::pair<std::string, std::int64_t>, std::vector<const Call*>> releases;
  for (const Call& c : calls) {
    if (c.op == "release") {
      releases[{c.key, c.token}].push_back(&c);
    }
  }
  std::vector<Call> grants;
  std::map<std::pair<std::string, std::int64_t>, Lease> leases;
  for (const Call& c : calls) {
    if (c.op == "acquire") {
      if (c.outcome == EventKind::Ok) {
        grants.push_back(c);
        leases[{c.key, c.token}] = Lease{c.key, c.token, c.answered, c.sent + c.ttl_ns};
      }
      continue;
    }
    auto it = leases.find({c.key, c.token});
    if (it == leases.end()) {
      continue;  // a call on a lease whose grant was never heard (an Info acquire)
    }
    Lease& l = it->second;
    std::ostringstream where;
    where << c.key << " token " << c.token << " (client " << c.client << ", " << c.op << " sent at "
          << ms(c.sent) << " ms)";
    if (c.op == "renew" && c.outcome == EventKind::Ok) {
      if (l.released < c.sent) {
        report.violations.push_back("I2 " + where.str() + ": renewed after its release");
      }
      l.lower_end = std::max(l.lower_end, c.sent + c.ttl_ns);
    }
    if (c.op == "release") {
      l.release = std::min(l.release, c.sent);
      if (c.outcome == EventKind::Ok) {
        l.released = std::min(l.released, c.answered);
      }
    }
    // "Not held" while the lease surely lived, and no other release of it had been sent before
    // the answer came: the store lost it.
    const auto& sent_releases = releases[{c.key, c.token}];
    bool explained = std::any_of(sent_releases.begin(), sent_releases.end(),
                                 [&](const Call* r) { return r != &c && r->sent < c.answered; });
    if (c.outcome == EventKind::Fail && l.lower_end > c.answered && !explained) {
      report.violations.push_back(
          "I2 " + where.str() + ": answered not held at " + std::to_string(ms(c.answered)) +
          " ms, but the lease lived at least until " + std::to_string(ms(l.lower_end)) + " ms");
    }
  }
  report.grants = static_cast<std::int64_t>(grants.size());
  check_tokens(grants, report);

  // I2's count: a sweep over the surely-live intervals of each key.
  std::map<std::string, std::vector<std::pair<std::int64_t, int>>> edges;
  for (const auto& [id, l] : leases) {
    std::int64_t end = std::min(l.release, l.lower_end);
    if (end > l.granted) {
      edges[l.key].emplace_back(l.granted, +1);
      edges[l.key].emplace_back(end, -1);
    }
  }
  for (auto& [key, list] : edges) {
    std::sort(list.begin(), list.end());  // at one instant, ends (-1) before starts (+1)
    int live = 0;
    int limit = limits.contains(key) ? limits.at(key) : 1;
    for (const auto& [t, delta] : list) {
      live += delta;
      if (live > limit) {
        report.violations.push_back("I2 " + key + ": " + std::to_string(live) +
                                    " leases surely live at " + std::to_string(ms(t)) +
                                    " ms (limit " + std::to_string(limit) + ")");
        break;
      }
    }
  }
  return report;
}

CheckReport check_children(const std::vector<Event>& events) {
  CheckReport report;
  std::map<std::string, std::int64_t> last_start;                          // key -> token
  std::map<std::pair<std::string, std::int64_t>, int> starter;             // (key, token) -> pid
  std::map<std::string, std::int64_t> last_accept;                         // key -> token
  std::map<std::pair<std::string, std::int64_t>, int> writer;              // (key, token) -> pid
  std::map<int, std::pair<std::string, std::int64_t>> alive;               // pid -> key, start
  std::map<std::string, std::vector<std::pair<std::int64_t, int>>> lives;  // key -> edges
  std::int64_t last_t = 0;
  for (const Event& e : events) {
    last_t = std::max(last_t, e.t);
    switch (e.kind) {
      case EventKind::Start: {
        ++report.grants;
        auto it = last_start.find(e.key);
        if (it != last_start.end() && it->second > e.token) {
          ++report.late_starts;
        }
        if (auto [s, fresh] = starter.try_emplace({e.key, e.token}, e.pid); !fresh) {
          report.violations.push_back("I1 " + e.key + ": token " + std::to_string(e.token) +
                                      " started two children (pids " + std::to_string(s->second) +
                                      " and " + std::to_string(e.pid) + ")");
        }
        last_start[e.key] = std::max(e.token, it == last_start.end() ? 0 : it->second);
        alive[e.pid] = {e.key, e.t};
        lives[e.key].emplace_back(e.t, +1);
        break;
      }
      case EventKind::End:
        if (alive.erase(e.pid) != 0) {
          lives[e.key].emplace_back(e.t, -1);
        }
        break;
      case EventKind::Accept: {
        ++report.accepted;
        std::int64_t& top = last_accept[e.key];
        if (e.token < top) {
          report.violations.push_back("I3 " + e.key + ": the sink accepted token " +
                                      std::to_string(e.token) + " after token " +
                                      std::to_string(top));
        }
        top = std::max(top, e.token);
        auto [it, fresh] = writer.try_emplace({e.key, e.token}, e.pid);
        if (!fresh && it->second != e.pid) {
          report.violations.push_back("I3 " + e.key + ": token " + std::to_string(e.token) +
                                      " written by two children (pids " +
                                      std::to_string(it->second) + " and " + std::to_string(e.pid) +
                                      ")");
        }
        break;
      }
      case EventKind::Reject:
        ++report.rejected;
        break;
      default:
        break;
    }
  }
  for (const auto& [pid, life] : alive) {
    lives[life.first].emplace_back(last_t, -1);  // still alive when the history ends
  }
  for (auto& [key, list] : lives) {
    std::sort(list.begin(), list.end());
    int live = 0;
    std::int64_t since = 0;
    for (const auto& [t, delta] : list) {
      if (live >= 2) {
        report.overlap_ns += (t - since) * (live - 1);
      }
      live += delta;
      since = t;
    }
  }
  return report;
}

}  // namespace aec::fault
