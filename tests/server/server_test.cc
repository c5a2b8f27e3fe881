// aecd over a real socket: who may call which route (docs/aecd.md, Tokens), a graceful stop, and
// a parked waiter whose connection drops.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <future>
#include <string>
#include <thread>

#include <arpa/inet.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/parking.h"
#include "tests/server/raw_http.h"
#include "tests/support/forwarding_store.h"
#include "tests/support/temp_dir.h"

namespace aec::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kKey = "a/k";
constexpr std::string_view kReaderA = "reader-a-0123456789abcdef";
constexpr std::string_view kWriterB = "writer-b-0123456789abcdef";
constexpr std::string_view kWriterA = "writer-a-0123456789abcdef";
constexpr std::string_view kAdmin = "admin-all-0123456789abcdef";
constexpr std::string_view kUnknown = "unknown-x-0123456789abcdef";

// Polls `done` until it holds or `bound` passes: synchronizes on an observed state, not on time.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds bound = 5s) {
  auto deadline = Clock::now() + bound;
  while (!done()) {
    if (Clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// The value of one series of /metrics ("aec_waiters"), -1 when absent.
double metric(const TestServer& t, std::string_view series, std::string_view token = "") {
  HttpReply r = t.call("GET", "/metrics", token);
  std::string needle = fmt::format("\n{} ", series);
  std::string text = "\n" + r.body;
  std::size_t at = text.find(needle);
  return at == std::string::npos ? -1 : std::atof(text.c_str() + at + needle.size());
}

std::int64_t grant(Store& store, std::string_view id, int limit = 1000) {
  AcquireRequest req;
  req.key = std::string(kKey);
  req.execution_id = std::string(id);
  req.ttl = 60s;
  req.limit = limit;
  auto r = store.acquire(req);
  EXPECT_TRUE(r && r->outcome == AcquireOutcome::Granted) << id;
  return r ? r->lease.token : 0;
}

bool holds(Store& store, std::int64_t token) {
  auto state = store.get(kKey);
  return state && std::ranges::any_of(state->holders,
                                      [&](const Holder& h) { return h.execution.token == token; });
}

// ---- The auth matrix ----------------------------------------------------------------------

enum class Call {
  Acquire,
  Renew,
  Release,
  LeaveQueue,
  GetKey,
  BlockingQuery,
  ListKeys,
  Executions,
  ExecutionsOfKey,
  History,
  ForceRelease,
  Purge,
  Vdk,
  Healthz,
  Readyz,
  Metrics,
};
enum class Who { NoToken, Unknown, ReaderA, WriterB, WriterA, Admin };

struct Cell {
  Call call;
  Who who;
  int status;  // the documented answer for a key under a/
};

// clang-format off
const Cell kMatrix[] = {
    {Call::Acquire, Who::NoToken, 401}, {Call::Acquire, Who::Unknown, 401},
    {Call::Acquire, Who::ReaderA, 403}, {Call::Acquire, Who::WriterB, 403},
    {Call::Acquire, Who::WriterA, 200}, {Call::Acquire, Who::Admin, 200},
    {Call::Renew, Who::NoToken, 401}, {Call::Renew, Who::Unknown, 401},
    {Call::Renew, Who::ReaderA, 403}, {Call::Renew, Who::WriterB, 403},
    {Call::Renew, Who::WriterA, 200}, {Call::Renew, Who::Admin, 200},
    {Call::Release, Who::NoToken, 401}, {Call::Release, Who::Unknown, 401},
    {Call::Release, Who::ReaderA, 403}, {Call::Release, Who::WriterB, 403},
    {Call::Release, Who::WriterA, 200}, {Call::Release, Who::Admin, 200},
    {Call::LeaveQueue, Who::NoToken, 401}, {Call::LeaveQueue, Who::Unknown, 401},
    {Call::LeaveQueue, Who::ReaderA, 403}, {Call::LeaveQueue, Who::WriterB, 403},
    {Call::LeaveQueue, Who::WriterA, 200}, {Call::LeaveQueue, Who::Admin, 200},
    {Call::GetKey, Who::NoToken, 401}, {Call::GetKey, Who::Unknown, 401},
    {Call::GetKey, Who::ReaderA, 200}, {Call::GetKey, Who::WriterB, 403},
    {Call::GetKey, Who::WriterA, 200}, {Call::GetKey, Who::Admin, 200},
    {Call::BlockingQuery, Who::NoToken, 401}, {Call::BlockingQuery, Who::Unknown, 401},
    {Call::BlockingQuery, Who::ReaderA, 200}, {Call::BlockingQuery, Who::WriterB, 403},
    {Call::BlockingQuery, Who::WriterA, 200}, {Call::BlockingQuery, Who::Admin, 200},
    {Call::ListKeys, Who::NoToken, 401}, {Call::ListKeys, Who::Unknown, 401},
    {Call::ListKeys, Who::ReaderA, 200}, {Call::ListKeys, Who::WriterB, 403},
    {Call::ListKeys, Who::WriterA, 200}, {Call::ListKeys, Who::Admin, 200},
    {Call::Executions, Who::NoToken, 401}, {Call::Executions, Who::Unknown, 401},
    {Call::Executions, Who::ReaderA, 200}, {Call::Executions, Who::WriterB, 403},
    {Call::Executions, Who::WriterA, 200}, {Call::Executions, Who::Admin, 200},
    {Call::ExecutionsOfKey, Who::NoToken, 401}, {Call::ExecutionsOfKey, Who::Unknown, 401},
    {Call::ExecutionsOfKey, Who::ReaderA, 200}, {Call::ExecutionsOfKey, Who::WriterB, 403},
    {Call::ExecutionsOfKey, Who::WriterA, 200}, {Call::ExecutionsOfKey, Who::Admin, 200},
    {Call::History, Who::NoToken, 401}, {Call::History, Who::Unknown, 401},
    {Call::History, Who::ReaderA, 200}, {Call::History, Who::WriterB, 403},
    {Call::History, Who::WriterA, 200}, {Call::History, Who::Admin, 200},
    {Call::ForceRelease, Who::NoToken, 401}, {Call::ForceRelease, Who::Unknown, 401},
    {Call::ForceRelease, Who::ReaderA, 403}, {Call::ForceRelease, Who::WriterB, 403},
    {Call::ForceRelease, Who::WriterA, 403}, {Call::ForceRelease, Who::Admin, 200},
    {Call::Purge, Who::NoToken, 401}, {Call::Purge, Who::Unknown, 401},
    {Call::Purge, Who::ReaderA, 403}, {Call::Purge, Who::WriterB, 403},
    {Call::Purge, Who::WriterA, 403}, {Call::Purge, Who::Admin, 200},
    {Call::Vdk, Who::NoToken, 401}, {Call::Vdk, Who::Unknown, 401},
    {Call::Vdk, Who::ReaderA, 200}, {Call::Vdk, Who::WriterB, 403},
    {Call::Vdk, Who::WriterA, 200}, {Call::Vdk, Who::Admin, 200},
    {Call::Healthz, Who::NoToken, 200}, {Call::Healthz, Who::Unknown, 200},
    {Call::Healthz, Who::ReaderA, 200}, {Call::Healthz, Who::WriterB, 200},
    {Call::Healthz, Who::WriterA, 200}, {Call::Healthz, Who::Admin, 200},
    {Call::Readyz, Who::NoToken, 200}, {Call::Readyz, Who::Unknown, 200},
    {Call::Readyz, Who::ReaderA, 200}, {Call::Readyz, Who::WriterB, 200},
    {Call::Readyz, Who::WriterA, 200}, {Call::Readyz, Who::Admin, 200},
    {Call::Metrics, Who::NoToken, 401}, {Call::Metrics, Who::Unknown, 401},
    {Call::Metrics, Who::ReaderA, 200}, {Call::Metrics, Who::WriterB, 200},
    {Call::Metrics, Who::WriterA, 200}, {Call::Metrics, Who::Admin, 200},
};
// clang-format on

std::string_view token_of(Who who) {
  switch (who) {
    case Who::NoToken:
      return "";
    case Who::Unknown:
      return kUnknown;
    case Who::ReaderA:
      return kReaderA;
    case Who::WriterB:
      return kWriterB;
    case Who::WriterA:
      return kWriterA;
    case Who::Admin:
      return kAdmin;
  }
  return "";
}

struct Probe {
  std::string method;
  std::string target;
  std::string body;
  std::int64_t lease = 0;  // a live lease the call names (or could free), 0 for none
};

// The request of `call` on key a/k. Calls that name (or free) a lease get a fresh live one, so
// a refused caller is refused while holding the right fencing token.
Probe probe_for(Call call, Store& store) {
  std::string k = path_key(kKey);
  switch (call) {
    case Call::Acquire:
      return {"POST", "/v1/leases", R"({"key": "a/k", "limit": 1000, "ttl_ms": 60000})"};
    case Call::Renew: {
      std::int64_t t = grant(store, "renewed");
      return {"POST", fmt::format("/v1/keys/{}/leases/{}/renew", k, t), R"({"ttl_ms": 60000})", t};
    }
    case Call::Release: {
      std::int64_t t = grant(store, "released");
      return {"POST", fmt::format("/v1/keys/{}/leases/{}/release", k, t), "{}", t};
    }
    case Call::LeaveQueue:
      return {"DELETE", fmt::format("/v1/keys/{}/queue/nobody", k), ""};
    case Call::GetKey:
      return {"GET", "/v1/keys/" + k, ""};
    case Call::BlockingQuery:
      return {"GET", fmt::format("/v1/keys/{}?index={}&wait=20ms", k, store.get(kKey)->version),
              ""};
    case Call::ListKeys:
      return {"GET", "/v1/keys?prefix=a%2F", ""};
    case Call::Executions:
      return {"GET", "/v1/executions?prefix=a%2F", ""};
    case Call::ExecutionsOfKey:
      return {"GET", "/v1/executions?key=a%2Fk", ""};
    case Call::History:
      return {"GET", fmt::format("/v1/keys/{}/history", k), ""};
    case Call::ForceRelease:
      return {"POST", fmt::format("/v1/keys/{}/force-release", k), R"({"reason": "matrix"})",
              grant(store, "forced")};
    case Call::Purge:
      return {"POST", "/v1/purge", "{}"};
    case Call::Vdk:
      return {"GET", "/data-jobs/for-team/a/jobs/k/executions", ""};
    case Call::Healthz:
      return {"GET", "/healthz", ""};
    case Call::Readyz:
      return {"GET", "/readyz", ""};
    case Call::Metrics:
      return {"GET", "/metrics", ""};
  }
  return {};
}

std::string write_tokens(const TempDir& dir) {
  std::string path = dir.file("tokens");
  std::ofstream(path) << fmt::format(
      "# TOKEN NAME ROLE PREFIXES\n{} reader-a reader a/\n{} writer-b writer b/\n"
      "{} writer-a writer a/\n{} admin admin *\n",
      kReaderA, kWriterB, kWriterA, kAdmin);
  EXPECT_EQ(::chmod(path.c_str(), 0600), 0);
  return path;
}

TEST(ServerAuth, EveryRouteAnswersEachCallerAsDocumented) {
  TempDir dir;
  auto t = TestServer::start(memory_store(), {.tokens_file = write_tokens(dir)});
  ASSERT_TRUE(t.server);
  int row = 0;
  for (const Cell& cell : kMatrix) {
    SCOPED_TRACE(fmt::format("row {}: call {} by who {}", row++, static_cast<int>(cell.call),
                             static_cast<int>(cell.who)));
    Probe p = probe_for(cell.call, *t.store);
    HttpReply r = t.call(p.method, p.target, token_of(cell.who), p.body);
    ASSERT_EQ(r.status, cell.status) << p.method << " " << p.target << ": " << r.body;
    if (cell.status == 401) {
      EXPECT_TRUE(r.header("www-authenticate").starts_with("Bearer"))
          << r.header("www-authenticate");
      EXPECT_EQ(r.error_code(), "unauthenticated");
    } else if (cell.status == 403) {
      EXPECT_EQ(r.error_code(), "permission_denied");
    }
    if (cell.status != 200 && p.lease != 0) {
      EXPECT_TRUE(holds(*t.store, p.lease)) << "a refused call freed the lease";
    }
    if (cell.status == 200 && (cell.call == Call::Renew || cell.call == Call::Release)) {
      EXPECT_EQ(r.json().value("outcome", ""), "ok") << r.body;
    }
    if (cell.status == 200 && cell.call == Call::Acquire) {
      EXPECT_EQ(r.json().value("outcome", ""), "granted") << r.body;
    }
  }
}

// ---- Stop and dropped waiters -------------------------------------------------------------

TEST(ServerStop, AnswersParkedRequestsAndReleasesNothing) {
  auto t = TestServer::start(memory_store());
  ASSERT_TRUE(t.server);
  std::int64_t held = grant(*t.store, "holder", 1);

  RawConnection waiter(t.port());
  ASSERT_TRUE(waiter.send(http_request(
      "POST", "/v1/leases", "", R"({"key": "a/k", "execution_id": "parked", "wait_ms": 30000})")));
  ASSERT_TRUE(eventually([&] { return metric(t, "aec_waiters") == 1; }));
  std::int64_t version = t.store->get(kKey)->version;
  RawConnection query(t.port());
  ASSERT_TRUE(query.send(
      http_request("GET", fmt::format("/v1/keys/{}?index={}&wait=30s", path_key(kKey), version))));
  ASSERT_TRUE(
      eventually([&] { return metric(t, "aec_store_latency_seconds_count{op=\"get\"}") >= 1; }));

  auto start = Clock::now();
  t.server->stop();
  EXPECT_LT(Clock::now() - start, 5s) << "stop() waited for the parked requests' deadlines";

  HttpReply a = waiter.read_reply(1s);
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_EQ(a.json().value("outcome", ""), "busy") << a.body;
  HttpReply q = query.read_reply(1s);
  ASSERT_EQ(q.status, 200) << q.body;
  EXPECT_EQ(q.json().value("version", std::int64_t{-1}), version) << q.body;
  EXPECT_EQ(q.header("x-aec-index"), std::to_string(version));
  EXPECT_TRUE(holds(*t.store, held)) << "stop() released a lease";
}

// True when a connection to 127.0.0.1:port is refused (nothing listens there any more).
bool refuses_connections(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool refused =
      ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 && errno == ECONNREFUSED;
  ::close(fd);
  return refused;
}

// A request still arriving when stop() begins is answered, and stop() returns. Found by review:
// stop() joined the store pool before it told the sessions to close, so a request read after
// that (the rest of it arrived late, or it came between the two) was handed to a pool that no
// longer ran anything: never answered, and stop() waited for that connection forever.
TEST(ServerStop, ARequestStillArrivingWhenStopBeginsIsAnswered) {
  auto t = TestServer::start(memory_store());
  ASSERT_TRUE(t.server);
  grant(*t.store, "holder", 1);
  RawConnection c(t.port());
  const std::string get = http_request("GET", "/v1/keys/" + path_key(kKey));
  // One request, then the first bytes of the next: once the first is answered, the session is
  // reading the second (not idle), so stop() lets it finish.
  ASSERT_TRUE(c.send(get + get.substr(0, 10)));
  HttpReply first = c.read_reply();
  ASSERT_EQ(first.status, 200) << first.body;

  std::thread stopper([&] { t.server->stop(); });
  ASSERT_TRUE(eventually([&] { return refuses_connections(t.port()); }));  // stop() has begun
  ASSERT_TRUE(c.send(get.substr(10)));
  HttpReply second = c.read_reply();
  EXPECT_EQ(second.status, 200) << "the request read after stop() began was not answered";
  EXPECT_TRUE(c.wait_closed(5s)) << "the connection stayed open after its answer";
  c.close();  // (on failure, lets stop() end)
  stopper.join();
}

// Parking on its own, over a memory store, with an I/O thread and a pool as aecd has.
struct ParkingRig {
  explicit ParkingRig(std::shared_ptr<Store> s = memory_store()) : store(std::move(s)) {}

  std::shared_ptr<Store> store;
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work =
      boost::asio::make_work_guard(io);
  boost::asio::thread_pool pool{2};
  server::Parking parking{io, pool, *store, 10s};  // a slow recheck: no rescue from it
  std::thread io_thread{[this] { io.run(); }};

  ~ParkingRig() {
    parking.shut_down();
    work.reset();
    pool.join();
    io.stop();
    io_thread.join();
  }
};

// Found by the handoff benchmark (T14): a release that came between a waiter's busy answer and
// its park found nobody in line to wake, and the waiter sat until its retry (up to the recheck
// interval: a 1 s handover at aecd's default, a few times a second at two clients on a hot key).
// The park now sees that the key's change mark moved since its store call and asks at once.
TEST(ServerParking, AReleaseBetweenTheBusyAnswerAndTheParkIsNotMissed) {
  std::promise<Result<AcquireResult>> answer;  // outlives the rig, which may still answer
  ParkingRig rig;
  std::int64_t held = grant(*rig.store, "holder", 1);
  AcquireRequest req{.key = std::string(kKey), .execution_id = "waiter", .ttl = 60s};
  req.queue = true;
  std::uint64_t mark = rig.parking.change_mark(req.key);
  Result<AcquireResult> busy = rig.store->acquire(req);
  ASSERT_TRUE(busy && busy->outcome == AcquireOutcome::Busy);
  ASSERT_TRUE(rig.store->release(kKey, held, {}));
  rig.parking.changed(req.key);  // nobody is parked yet: it wakes nobody

  rig.parking.park_acquire(req, *busy, mark, Clock::now() + 30s, [&](Result<AcquireResult> r) {
    answer.set_value(std::move(r));
    return true;
  });
  std::future<Result<AcquireResult>> got = answer.get_future();
  ASSERT_EQ(got.wait_for(3s), std::future_status::ready)
      << "the waiter missed the release and waits for the recheck";
  Result<AcquireResult> r = got.get();
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->outcome, AcquireOutcome::Granted);
}

// Asks the store for `req` (a queue=true acquire of a busy key: Busy, with a place in its line)
// and parks the call until `deadline`; its answer goes to `answer`. Returns the park's handle.
std::uint64_t park_waiter(ParkingRig& rig, const AcquireRequest& req,
                          std::chrono::steady_clock::time_point deadline,
                          std::promise<Result<AcquireResult>>& answer) {
  std::uint64_t mark = rig.parking.change_mark(req.key);
  Result<AcquireResult> busy = rig.store->acquire(req);
  EXPECT_TRUE(busy && busy->outcome == AcquireOutcome::Busy);
  if (!busy || busy->outcome != AcquireOutcome::Busy) {
    return 0;
  }
  return rig.parking.park_acquire(req, *busy, mark, deadline, [&answer](Result<AcquireResult> r) {
    answer.set_value(std::move(r));
    return true;
  });
}

// The first in line keeps its store place alive: it asks again within its queue_ttl (a third of
// it, as the client library does), not only on a change or at the recheck. Before, with a
// queue_ttl shorter than the recheck interval (or --recheck-interval longer than a caller's
// queue_ttl) its place lapsed, and a caller that came later took the slot ahead of it.
TEST(ServerParking, TheFirstInLineKeepsItsPlaceWithinItsQueueTtl) {
  std::promise<Result<AcquireResult>> answer;
  ParkingRig rig;  // a 10 s recheck
  std::int64_t held = grant(*rig.store, "holder", 1);
  AcquireRequest req{.key = std::string(kKey), .execution_id = "waiter", .ttl = 60s};
  req.queue = true;
  req.queue_ttl = 300ms;
  ASSERT_NE(park_waiter(rig, req, Clock::now() + 30s, answer), 0U);
  // Time passing is what is tested: three of the place's ttls, with no change to wake anyone.
  std::this_thread::sleep_for(900ms);
  // Freed behind aecd's back (as another aecd or `aec` on the same store would): nobody is told.
  ASSERT_TRUE(rig.store->release(kKey, held, {}));
  Result<AcquireResult> later =
      rig.store->acquire({.key = std::string(kKey), .execution_id = "later", .ttl = 60s});
  ASSERT_TRUE(later) << later.error().to_string();
  EXPECT_EQ(later->outcome, AcquireOutcome::Busy) << "a later caller went ahead of the waiter";
  std::future<Result<AcquireResult>> got = answer.get_future();
  ASSERT_EQ(got.wait_for(5s), std::future_status::ready);
  Result<AcquireResult> r = got.get();
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->outcome, AcquireOutcome::Granted);
}

// A grant whose answer cannot reach the caller (the client went away after the store granted it,
// before the answer was sent) is released, recorded Cancelled, rather than held until its ttl.
TEST(ServerParking, AGrantThatCannotReachItsCallerIsReleased) {
  std::promise<std::int64_t> granted;
  ParkingRig rig;
  std::int64_t held = grant(*rig.store, "holder", 1);
  AcquireRequest req{.key = std::string(kKey), .execution_id = "gone", .ttl = 60s};
  req.queue = true;
  std::uint64_t mark = rig.parking.change_mark(req.key);
  Result<AcquireResult> busy = rig.store->acquire(req);
  ASSERT_TRUE(busy && busy->outcome == AcquireOutcome::Busy);
  rig.parking.park_acquire(req, *busy, mark, Clock::now() + 30s, [&](Result<AcquireResult> r) {
    granted.set_value(r && r->outcome == AcquireOutcome::Granted ? r->lease.token : 0);
    return false;  // as Exchange::respond() answers once the client has gone
  });
  ASSERT_TRUE(rig.store->release(kKey, held, {}));
  rig.parking.changed(req.key);
  std::future<std::int64_t> got = granted.get_future();
  ASSERT_EQ(got.wait_for(5s), std::future_status::ready);
  std::int64_t token = got.get();
  ASSERT_GT(token, 0) << "the waiter was not granted";
  ASSERT_TRUE(eventually([&] {
    Result<KeyState> state = rig.store->get(req.key);
    return state && state->holders.empty();
  })) << "the grant nobody received is still held";
  Result<KeyState> state = rig.store->get(req.key);
  ASSERT_TRUE(state && state->last_ended);
  EXPECT_EQ(state->last_ended->id, "gone");
  EXPECT_EQ(state->last_ended->status, ExecutionStatus::Cancelled);
}

// A store that fails every acquire while `fail` is set.
class FailingAcquires : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Result<AcquireResult> acquire(const AcquireRequest& req) override {
    if (fail) {
      return Status(Code::Unavailable, "acquire failed on purpose");
    }
    return ForwardingStore::acquire(req);
  }
  std::atomic<bool> fail{false};
};

// Parks `id` behind a holder of kKey, its store place good for a minute; returns its handle.
std::uint64_t park_behind_holder(ParkingRig& rig, const std::string& id,
                                 std::promise<Result<AcquireResult>>& answer) {
  grant(*rig.store, "holder", 1);
  AcquireRequest req{.key = std::string(kKey), .execution_id = id, .ttl = 60s};
  req.queue = true;
  req.queue_ttl = 60s;
  return park_waiter(rig, req, Clock::now() + 30s, answer);
}

bool in_store_line(Store& store, const std::string& id) {
  Result<KeyState> state = store.get(kKey);
  return state && std::find(state->queue.begin(), state->queue.end(), id) != state->queue.end();
}

// A waiter answered with a store error leaves the store's line; kept, its place would hold the
// next waiter back until it lapsed (here a minute).
TEST(ServerParking, AWaiterAnsweredWithAnErrorLeavesTheStoresLine) {
  std::promise<Result<AcquireResult>> answer;
  auto store = std::make_shared<FailingAcquires>(memory_store());
  ParkingRig rig(store);
  park_behind_holder(rig, "waiter", answer);
  ASSERT_TRUE(in_store_line(*store, "waiter"));
  store->fail = true;
  rig.parking.changed(std::string(kKey));  // the waiter asks again, and the store fails
  std::future<Result<AcquireResult>> got = answer.get_future();
  ASSERT_EQ(got.wait_for(5s), std::future_status::ready);
  EXPECT_FALSE(got.get().has_value());
  EXPECT_TRUE(eventually([&] { return !in_store_line(*store, "waiter"); }))
      << "the waiter answered with an error kept its place in the store's line";
}

// A waiter that left while a release was handing the key to it, when the handoff failed
// (nothing changed in the store), leaves the store's line as well.
TEST(ServerParking, AWaiterThatLeftDuringAFailedHandoffLeavesTheStoresLine) {
  std::promise<Result<AcquireResult>> answer;
  ParkingRig rig;
  std::uint64_t id = park_behind_holder(rig, "waiter", answer);
  std::optional<server::Parking::Claim> claim = rig.parking.claim_first(std::string(kKey));
  ASSERT_TRUE(claim);
  rig.parking.abandon(std::string(kKey), id);  // its connection dropped meanwhile
  rig.parking.unclaim(std::string(kKey), *claim);
  EXPECT_TRUE(eventually([&] { return !in_store_line(*rig.store, "waiter"); }))
      << "the waiter that left kept its place in the store's line";
}

// When the first in line gives up (its deadline passed), the next is granted a free slot at once:
// it asks again after the first's place has left the store's line. Before, its ask could come
// first, find that place still ahead, and wait for the recheck.
TEST(ServerParking, TheNextInLineIsGrantedOnceTheFirstGivesUp) {
  std::promise<Result<AcquireResult>> first_answer;
  std::promise<Result<AcquireResult>> second_answer;
  ParkingRig rig;  // a 10 s recheck
  std::int64_t held = grant(*rig.store, "holder", 1);
  AcquireRequest req{.key = std::string(kKey), .execution_id = "first", .ttl = 60s};
  req.queue = true;
  req.queue_ttl = 60s;
  ASSERT_NE(park_waiter(rig, req, Clock::now() + 300ms, first_answer), 0U);
  // The second joins the line behind it without a store call (as aecd does when a line exists).
  AcquireRequest next{.key = std::string(kKey), .execution_id = "second", .ttl = 60s};
  next.queue = true;
  next.queue_ttl = 60s;  // its own asks again come only every 20 s
  server::Parking::AcquireDone second_done = [&](Result<AcquireResult> r) {
    second_answer.set_value(std::move(r));
    return true;
  };
  ASSERT_TRUE(rig.parking.join_line(next, Clock::now() + 30s, second_done));
  // Freed behind aecd's back: nobody is told, and the first's place holds the slot for it.
  ASSERT_TRUE(rig.store->release(kKey, held, {}));
  std::future<Result<AcquireResult>> first = first_answer.get_future();
  ASSERT_EQ(first.wait_for(5s), std::future_status::ready);
  Result<AcquireResult> gave_up = first.get();
  ASSERT_TRUE(gave_up) << gave_up.error().to_string();
  ASSERT_EQ(gave_up->outcome, AcquireOutcome::Busy);  // nothing woke it before its deadline
  std::future<Result<AcquireResult>> second = second_answer.get_future();
  ASSERT_EQ(second.wait_for(3s), std::future_status::ready)
      << "the next in line was not granted the free slot when the first gave up";
  Result<AcquireResult> r = second.get();
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->outcome, AcquireOutcome::Granted);
}

// The same for a blocking query: a change between its read and its park answers it at once.
TEST(ServerParking, AChangeBetweenTheReadAndTheParkAnswersABlockingQuery) {
  std::promise<Result<KeyState>> answer;
  ParkingRig rig;
  std::string key(kKey);
  std::uint64_t mark = rig.parking.change_mark(key);
  Result<KeyState> before = rig.store->get(key);
  ASSERT_TRUE(before);
  grant(*rig.store, "holder", 1);
  rig.parking.changed(key);

  rig.parking.park_query(key, before->version, *before, mark, Clock::now() + 30s,
                         [&](Result<KeyState> r) { answer.set_value(std::move(r)); });
  std::future<Result<KeyState>> got = answer.get_future();
  ASSERT_EQ(got.wait_for(3s), std::future_status::ready)
      << "the query missed the change and waits for the recheck";
  Result<KeyState> r = got.get();
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_GT(r->version, before->version);
}

// A parked caller that asks for a heartbeat (Aec-Heartbeat-Ms) gets its answer streamed once
// it has waited that long: a 200 head (chunked), a space per heartbeat, then the answer as the
// last chunk. So it can tell a parked call from a dead connection (T11). HTTP/1.0 callers get
// the plain answer (no chunked bodies in 1.0), and a malformed value is refused.
TEST(ServerParking, AParkedCallGetsTheHeartbeatItAskedFor) {
  auto t = TestServer::start(memory_store());
  ASSERT_TRUE(t.server);
  std::int64_t held = grant(*t.store, "holder", 1);
  auto parked = [](std::string_view version, std::string_view key, std::string_view beat) {
    std::string body = fmt::format(R"({{"key": "{}", "wait_ms": 30000}})", key);
    return fmt::format(
        "POST /v1/leases HTTP/{}\r\nHost: 127.0.0.1\r\nAec-Heartbeat-Ms: {}\r\n"
        "Content-Length: {}\r\n\r\n{}",
        version, beat, body.size(), body);
  };
  RawConnection waiter(t.port());
  ASSERT_TRUE(waiter.send(parked("1.1", kKey, "1000")));
  ASSERT_TRUE(eventually([&] { return metric(t, "aec_waiters") == 1; }));
  RawConnection old(t.port());  // HTTP/1.0, second in line
  ASSERT_TRUE(old.send(parked("1.0", kKey, "1000")));

  std::string head = waiter.read_until("\r\n\r\n", 3s);
  ASSERT_TRUE(head.starts_with("HTTP/1.1 200 OK\r\n")) << head;
  EXPECT_NE(head.find("Transfer-Encoding: chunked\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("X-Accel-Buffering: no\r\n"), std::string::npos) << head;
  for (int beat = 0; beat < 2; ++beat) {
    EXPECT_EQ(waiter.read_until("\r\n \r\n", 3s), "1\r\n \r\n") << "heartbeat " << beat;
  }
  HttpReply none = old.read_reply(100ms);
  EXPECT_EQ(none.status, HttpReply::kTimedOut) << "an HTTP/1.0 caller got " << none.status;

  HttpReply released =
      t.call("POST", fmt::format("/v1/keys/{}/leases/{}/release", path_key(kKey), held), "", "{}");
  ASSERT_EQ(released.status, 200) << released.body;
  std::string rest = waiter.read_until("\r\n0\r\n\r\n", 3s);
  std::size_t json = rest.find('{');
  ASSERT_NE(json, std::string::npos) << rest;
  nlohmann::json granted = nlohmann::json::parse(rest.substr(json, rest.rfind('}') - json + 1));
  EXPECT_EQ(granted.value("outcome", ""), "granted") << rest;
  // The connection is kept alive after the stream: the next request is answered on it.
  HttpReply again = waiter.exchange(http_request("GET", "/v1/keys/" + path_key(kKey)));
  EXPECT_EQ(again.status, 200) << again.body;

  for (std::string_view bad : {"999", "600001", "5s", "", "-1000", "1e3"}) {
    RawConnection c(t.port());
    HttpReply r = c.exchange(parked("1.1", "a/third", bad));
    ASSERT_EQ(r.status, 400) << "Aec-Heartbeat-Ms: '" << bad << "': " << r.body;
    EXPECT_EQ(r.error_message(),
              "header Aec-Heartbeat-Ms must be a whole number of milliseconds from 1000 to "
              "600000")
        << r.body;
  }
}

// An answer that is quick needs no stream: the heartbeat changes nothing then.
TEST(ServerParking, AQuickAnswerIsNotStreamed) {
  auto t = TestServer::start(memory_store());
  ASSERT_TRUE(t.server);
  RawConnection c(t.port());
  std::string body = R"({"key": "a/quick", "wait_ms": 30000})";
  HttpReply r = c.exchange(
      fmt::format("POST /v1/leases HTTP/1.1\r\nHost: 127.0.0.1\r\nAec-Heartbeat-Ms: 1000\r\n"
                  "Content-Length: {}\r\n\r\n{}",
                  body.size(), body));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("transfer-encoding"), "");
  EXPECT_EQ(r.json().value("outcome", ""), "granted") << r.body;
}

TEST(ServerParking, AWaiterWhoseConnectionDropsLeavesTheLine) {
  // A slow recheck: the grant to B can only come promptly from the release itself.
  auto t = TestServer::start(memory_store(), {.recheck_interval = 5s});
  ASSERT_TRUE(t.server);
  std::int64_t held = grant(*t.store, "holder", 1);
  auto queue_is = [&](std::vector<std::string> ids) {
    auto state = t.store->get(kKey);
    return state && state->queue == ids;
  };
  auto parked_acquire = [](std::string_view id) {
    return http_request("POST", "/v1/leases", "",
                        fmt::format(R"({{"key": "a/k", "execution_id": "{}", "wait_ms": 30000,)"
                                    R"( "queue_ttl_ms": 30000}})",
                                    id));
  };

  auto a = std::make_unique<RawConnection>(t.port());
  ASSERT_TRUE(a->send(parked_acquire("A")));
  ASSERT_TRUE(eventually([&] { return queue_is({"A"}); }));
  a.reset();  // A hangs up while parked
  RawConnection b(t.port());
  ASSERT_TRUE(b.send(parked_acquire("B")));
  ASSERT_TRUE(eventually([&] { return queue_is({"B"}) && metric(t, "aec_waiters") == 1; }))
      << "A kept its place in line after its connection dropped";

  auto start = Clock::now();
  HttpReply released =
      t.call("POST", fmt::format("/v1/keys/{}/leases/{}/release", path_key(kKey), held), "", "{}");
  ASSERT_EQ(released.status, 200) << released.body;
  HttpReply granted = b.read_reply(4s);
  ASSERT_EQ(granted.status, 200) << granted.body;
  EXPECT_LT(Clock::now() - start, 4s);
  nlohmann::json j = granted.json();
  EXPECT_EQ(j.value("outcome", ""), "granted") << granted.body;
  EXPECT_EQ(j["lease"].value("execution_id", ""), "B") << granted.body;

  auto state = t.store->get(kKey);
  ASSERT_TRUE(state);
  ASSERT_EQ(state->holders.size(), 1u);
  EXPECT_EQ(state->holders[0].execution.id, "B");
  EXPECT_TRUE(state->queue.empty());
  auto all = t.store->list({.key = std::string(kKey)});
  ASSERT_TRUE(all);
  EXPECT_TRUE(std::ranges::none_of(*all, [](const Execution& e) { return e.id == "A"; }))
      << "the dropped waiter A ran";
}

}  // namespace
}  // namespace aec::testing
