// OpenSSL as the control plane uses it: contexts loaded from PEM files with
// errors that name the file, a socket BIO that never raises SIGPIPE, and a
// certificate's subject as text.
#pragma once

#include <string>

using SSL_CTX = struct ssl_ctx_st;
using BIO_METHOD = struct bio_method_st;
using X509 = struct x509_st;

namespace sluice::ctrl {

// Everything OpenSSL queued about the last failure, oldest first.
std::string openssl_errors();

// The socket BIO with its writes made by send(MSG_NOSIGNAL): a peer that went
// away costs a failed write, not the process.
const BIO_METHOD *socket_without_sigpipe();

// A server context, TLS 1.2 or later, from a PEM certificate chain and an
// unencrypted key; with `client_ca`, clients must show a certificate it
// signed. Null, with `error` naming the file, when a file cannot be used.
SSL_CTX *tls_server_context(const std::string &certificate_file, const std::string &key_file,
                            const std::string &client_ca, std::string &error);

// The subject, RFC 2253 style ("CN=x,O=y").
std::string certificate_subject(X509 *certificate);

} // namespace sluice::ctrl
