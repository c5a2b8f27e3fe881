#include "stores/dynamodb/metadata_http.h"

#include <memory>

#include <curl/curl.h>
#include <fmt/format.h>

#include "stores/dynamodb/curl_body.h"

namespace aec::aws {
namespace {

constexpr std::size_t kMaxBody = 64 * 1024;  // credentials are a few hundred bytes

}  // namespace

Result<MetadataReply> metadata_request(std::string_view method, const std::string& url,
                                       const std::vector<std::string>& headers,
                                       std::chrono::milliseconds timeout) {
  init_curl_once();
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> easy(curl_easy_init(), curl_easy_cleanup);
  if (!easy) {
    return unavailable(fmt::format("{} {}: libcurl cannot make a handle", method, url));
  }
  curl_slist* list = nullptr;
  for (const std::string& h : headers) {
    if (curl_slist* longer = curl_slist_append(list, h.c_str()); longer != nullptr) {
      list = longer;
    }
  }
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> owned(list, curl_slist_free_all);
  MetadataReply reply;
  char error[CURL_ERROR_SIZE] = {};
  CURL* e = easy.get();
  std::string method_text(method);
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method_text.c_str());
  if (method == "PUT") {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
  }
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, append_body<kMaxBody>);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &reply.body);
  CURLcode code = curl_easy_perform(e);
  if (code != CURLE_OK) {
    return unavailable(
        fmt::format("{} {}: {}", method, url, error[0] != '\0' ? error : curl_easy_strerror(code)));
  }
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &reply.status);
  return reply;
}

}  // namespace aec::aws
