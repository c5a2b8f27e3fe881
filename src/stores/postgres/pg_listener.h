// The postgres store's LISTEN connection: one per store, opened at the first wait(). Every write
// that changes a key NOTIFYs the store's channel with the key; the listener wakes the threads
// waiting on that key, so waits are pushed, not polled.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <aec/clock.h>

namespace aec::pg {

class Conn;

class Listener {
 public:
  // `channel` is also the schema whose listen() function registers this listener's interests.
  Listener(std::string conninfo, std::string shown, std::string channel);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // What a waiter has seen of a key: a change count for the key and the connection's epoch
  // (which moves at every reconnect, when notifications may have been missed).
  struct Seen {
    std::uint64_t changes = 0;
    std::uint64_t epoch = 0;
    bool operator==(const Seen&) const = default;
  };

  // Registers interest in `key` (notifications for other keys are dropped) and returns what has
  // been seen so far. Pair with unsubscribe().
  Seen subscribe(const std::string& key);
  void unsubscribe(const std::string& key);
  // Blocks up to `nap` (real time) until the key changes or the listener reconnects after `seen`,
  // or `stop`. Returns what is seen then.
  Seen await(const std::string& key, Seen seen, std::chrono::nanoseconds nap, std::stop_token stop);
  // True while LISTEN is in effect; while false, waiters must poll.
  bool listening();

  // This listener's name in the store's listeners table. Writers NOTIFY a key only when a
  // listener is registered for it (or for every key, ''), or someone waits in its line: the
  // caller registers an interest (listen()) before it reads, and the listener's thread keeps
  // every current interest registered.
  const std::string& id() const { return id_; }
  // How long a registration lasts; the listener refreshes them at a third of it.
  static constexpr milliseconds kRegistration{60'000};

  // For an acquire parked in the store: registers `execution_id` as waiting in `key`'s line
  // and returns how often its turn has been named so far (first in line, or handed a lease by
  // a release). Pair with drop_turn().
  std::uint64_t watch_turn(const std::string& key, const std::string& execution_id);
  void drop_turn(const std::string& key, const std::string& execution_id);
  // Blocks up to `nap` (real time) until a change names `execution_id` in `key`'s line
  // (or the listener reconnects) after `seen` such events, or `stop`. Returns the count then.
  std::uint64_t await_turn(const std::string& key, const std::string& execution_id,
                           std::uint64_t seen, std::chrono::nanoseconds nap, std::stop_token stop);

  // Calls `on_change(key)` for every notification, and `on_change("")` after each (re)connect
  // (notifications may have been missed). Runs on the listener's thread. remove_feed() waits
  // for a call in progress, so none is made after it returns.
  using Feed = std::function<void(const std::string& key)>;
  std::uint64_t add_feed(Feed on_change);
  void remove_feed(std::uint64_t id);

 private:
  void run(std::stop_token stop);
  // One connection's life: LISTEN, then dispatch notifications until it fails or stop.
  void listen_once(std::stop_token stop);
  void set_listening(bool on);
  void tell_feeds(const std::vector<std::string>& keys);
  // Registers every current interest again, on the listener's connection.
  void refresh(Conn& conn);

  const std::string conninfo_;
  const std::string shown_;
  const std::string channel_;
  const std::string id_;
  int wake_fd_ = -1;  // eventfd: ends the poll at shutdown
  std::mutex mu_;
  std::condition_variable_any cv_;
  struct Interest {
    int waiters = 0;
    std::uint64_t changes = 0;
  };
  struct Turn {
    int waiters = 0;
    std::uint64_t named = 0;  // changes that named it, plus reconnects
  };
  std::unordered_map<std::string, Interest> keys_;
  std::unordered_map<std::string, Turn> turns_;  // by key + '\x1f' + execution id
  std::uint64_t epoch_ = 0;
  bool listening_ = false;
  std::mutex feeds_mu_;  // held while feeds are called
  std::map<std::uint64_t, Feed> feeds_;
  std::uint64_t next_feed_ = 1;
  std::jthread thread_;  // last: started after everything above
};

}  // namespace aec::pg
