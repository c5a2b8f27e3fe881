// aecd's TLS settings: the server context built from the PEM files of --tls-cert and --tls-key.
#pragma once

#include <memory>
#include <string>

#include <boost/asio/ssl/context.hpp>

#include <aec/status.h>

namespace aec::server {

// A TLS server context (TLS 1.2 or later; SSLv2/3, TLS 1.0 and 1.1 refused) serving the
// certificate chain in `cert_file` with the private key in `key_file`, both PEM. The key must be
// unencrypted: aecd never prompts for a passphrase. Reads both files now, so a mistake stops aecd
// before it binds. Errors: InvalidArgument, one line naming the file (as --tls-cert or
// --tls-key), what is wrong with it (missing, unreadable, not PEM, encrypted, the key not the
// certificate's) and what to do. The context is shared by every connection; it is not changed
// after this returns, so using it from several threads is safe.
Result<std::unique_ptr<boost::asio::ssl::context>> make_tls_context(const std::string& cert_file,
                                                                    const std::string& key_file);

}  // namespace aec::server
