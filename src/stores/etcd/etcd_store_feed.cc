// The etcd store's change feed (Store::watch_changes): one Watch on the whole k/ tree.
#include <functional>
#include <thread>

#include "stores/etcd/deadline.h"
#include "stores/etcd/etcd_store_impl.h"
#include "stores/etcd/txn_ops.h"
#include "stores/etcd/watch.h"

namespace aec::etcd {
namespace {

// How long one wait for events lasts before the thread looks at its stop token again (the wait
// also ends at once on a stop request: this only bounds a missed wake-up).
constexpr auto kFeedNap = std::chrono::seconds(1);

// Whether an event on `what` (Layout::Part::what) is news to a waiter: the key's version moved
// (meta was put), or a lease or place was deleted (freed, or lapsed by etcd's clock: expiry
// moves no version, yet a waiter may go now).
bool news(const Event& e, const std::string& what) {
  if (what == "meta") {
    return true;
  }
  return e.type() == Event::DELETE && (what.starts_with("l/") || what.starts_with("q/"));
}

class EtcdChangeFeed final : public ChangeFeed {
 public:
  EtcdChangeFeed(const Client& client, Layout layout,
                 std::function<void(const std::string&)> on_change)
      : layout_(std::move(layout)),
        on_change_(std::move(on_change)),
        thread_([this, &client](std::stop_token stop) { run(client, stop); }) {}

 private:
  // Opens the watch (again after etcd cancelled it), reports "" after each open (changes may
  // have been missed before it), and reports each change. A stream that fails is resumed by
  // the Watch itself from the next revision, losing nothing; a compaction loses events: "".
  void run(const Client& client, const std::stop_token& stop) {
    const std::string tree = layout_.keys();
    while (!stop.stop_requested()) {
      Result<std::unique_ptr<Watch>> watch =
          Watch::open(client, tree, {.range_end = prefix_end(tree)});
      if (!watch) {
        (void)pause_until(BootClock::now() + kFeedNap, stop);  // then open it again
        continue;
      }
      on_change_("");
      while (!stop.stop_requested()) {
        Result<WatchBatch> batch = (*watch)->next(BootClock::now() + kFeedNap, stop);
        if (!batch) {
          if (batch.error().code() == Code::Unavailable) {
            continue;  // the stream is reopened from the next revision at the next call
          }
          break;  // cancelled by etcd (or by us): open a new watch
        }
        if (batch->compact_revision != 0) {
          on_change_("");
        }
        for (const Event& e : batch->events) {
          std::optional<Layout::Part> part = layout_.part_of(e.kv().key());
          if (part && news(e, part->what)) {
            on_change_(part->key);
          }
        }
      }
    }
  }

  const Layout layout_;
  const std::function<void(const std::string&)> on_change_;
  std::jthread thread_;  // last: stopped and joined first
};

}  // namespace

std::unique_ptr<ChangeFeed> EtcdStore::watch_changes(
    std::function<void(const std::string& key)> on_change) {
  return std::make_unique<EtcdChangeFeed>(*client_, layout_, std::move(on_change));
}

}  // namespace aec::etcd
