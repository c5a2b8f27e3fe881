// ForwardingStore: a Store that passes every call to another one. Test stores that change one
// or two operations (fail them, count them, break them on purpose) derive from it and override
// just those.
#pragma once

#include <memory>

#include <aec/store.h>

namespace aec::testing {

class ForwardingStore : public Store {
 public:
  explicit ForwardingStore(std::shared_ptr<Store> inner) : inner_(std::move(inner)) {}

  Result<AcquireResult> acquire(const AcquireRequest& req) override { return inner_->acquire(req); }
  Result<LeaseOutcome> renew(std::string_view key, std::int64_t token, milliseconds ttl) override {
    return inner_->renew(key, token, ttl);
  }
  Result<LeaseOutcome> release(std::string_view key, std::int64_t token,
                               const Outcome& outcome) override {
    return inner_->release(key, token, outcome);
  }
  Result<KeyState> get(std::string_view key) override { return inner_->get(key); }
  Result<std::vector<Execution>> list(const ListFilter& filter) override {
    return inner_->list(filter);
  }
  Result<std::int64_t> wait(std::string_view key, std::int64_t version, MonoTime deadline,
                            std::stop_token stop) override {
    return inner_->wait(key, version, deadline, std::move(stop));
  }
  Result<ForceReleaseResult> force_release(std::string_view key, std::string_view reason,
                                           const Owner& by) override {
    return inner_->force_release(key, reason, by);
  }
  Result<PurgeResult> purge(const PurgeRequest& req) override { return inner_->purge(req); }
  Status leave_queue(std::string_view key, std::string_view execution_id) override {
    return inner_->leave_queue(key, execution_id);
  }
  std::string url() const override { return inner_->url(); }

 protected:
  Store& inner() { return *inner_; }
  // Lets go of the other store now (a derived store that must close it before its own parts).
  void drop_inner() { inner_.reset(); }

 private:
  std::shared_ptr<Store> inner_;
};

}  // namespace aec::testing
