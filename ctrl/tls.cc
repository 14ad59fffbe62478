#include "ctrl/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace sluice::ctrl {

std::string openssl_errors() {
    std::string text;
    while (const unsigned long code = ERR_get_error()) {
        const char *reason = ERR_reason_error_string(code);
        if (!text.empty())
            text += ": ";
        text += reason ? reason : "error " + std::to_string(code);
    }
    return text.empty() ? "unknown error" : text;
}

namespace {

// OpenSSL's socket BIO writes with write(2), which raises SIGPIPE when the
// peer has gone. This one writes with send(MSG_NOSIGNAL).
int send_without_sigpipe(BIO *bio, const char *data, int length) {
    BIO_clear_retry_flags(bio);
    int fd = -1;
    BIO_get_fd(bio, &fd);
    const ssize_t sent = ::send(fd, data, size_t(length), MSG_NOSIGNAL);
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_write(bio);
    return int(sent);
}

} // namespace

const BIO_METHOD *socket_without_sigpipe() {
    static BIO_METHOD *const method = [] {
        const BIO_METHOD *socket = BIO_s_socket();
        BIO_METHOD *own = BIO_meth_new(BIO_TYPE_SOCKET, "socket without SIGPIPE");
        BIO_meth_set_write(own, send_without_sigpipe);
        BIO_meth_set_read(own, BIO_meth_get_read(socket));
        BIO_meth_set_puts(own, BIO_meth_get_puts(socket));
        BIO_meth_set_ctrl(own, BIO_meth_get_ctrl(socket));
        BIO_meth_set_create(own, BIO_meth_get_create(socket));
        BIO_meth_set_destroy(own, BIO_meth_get_destroy(socket));
        return own;
    }();
    return method;
}

namespace {

int no_password(char *, int, int, void *) { return 0; }

} // namespace

SSL_CTX *tls_server_context(const std::string &certificate_file, const std::string &key_file_name,
                            const std::string &client_ca, std::string &error) {
    if (certificate_file.empty() || key_file_name.empty()) {
        error = "TLS needs both a certificate and a private key";
        return nullptr;
    }
    ERR_clear_error();
    SSL_CTX *context = SSL_CTX_new(TLS_server_method());
    if (!context) {
        error = "cannot create a TLS context: " + openssl_errors();
        return nullptr;
    }
    SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
    // Client-initiated renegotiation costs the server a handshake per request.
    SSL_CTX_set_options(context, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    // Output is written from a buffer that grows and is compacted between retries.
    SSL_CTX_set_mode(context, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    const auto failed = [&](std::string what) {
        error = std::move(what) + ": " + openssl_errors();
        SSL_CTX_free(context);
        return nullptr;
    };
    const char *certificate = certificate_file.c_str();
    if (SSL_CTX_use_certificate_chain_file(context, certificate) != 1)
        return failed("cannot load TLS certificate " + certificate_file);
    // Read apart from its use, so that "cannot read" and "does not match"
    // are told apart. An encrypted key fails here: no one is at a terminal.
    BIO *key_file = BIO_new_file(key_file_name.c_str(), "r");
    EVP_PKEY *key = key_file ? PEM_read_bio_PrivateKey(key_file, nullptr, no_password, nullptr)
                             : nullptr;
    BIO_free(key_file);
    if (!key)
        return failed("cannot load TLS private key " + key_file_name);
    const bool key_taken = SSL_CTX_use_PrivateKey(context, key) == 1;
    EVP_PKEY_free(key);
    if (!key_taken || SSL_CTX_check_private_key(context) != 1)
        return failed("TLS private key " + key_file_name +
                      " does not match certificate " + certificate_file);
    if (!client_ca.empty()) {
        const char *ca = client_ca.c_str();
        if (SSL_CTX_load_verify_locations(context, ca, nullptr) != 1)
            return failed("cannot load TLS client CA " + client_ca);
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
        if (!names)
            return failed("cannot load TLS client CA " + client_ca);
        SSL_CTX_set_client_CA_list(context, names);
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
        // Session resumption with client verification needs a context id.
        static const unsigned char session_context[] = "sluice-api";
        SSL_CTX_set_session_id_context(context, session_context, sizeof session_context - 1);
    }
    return context;
}

std::string certificate_subject(X509 *certificate) {
    BIO *text = BIO_new(BIO_s_mem());
    if (!text)
        return {};
    X509_NAME_print_ex(text, X509_get_subject_name(certificate), 0, XN_FLAG_RFC2253);
    char *data = nullptr;
    const long length = BIO_get_mem_data(text, &data);
    std::string subject(data, size_t(std::max(length, 0L)));
    BIO_free(text);
    return subject;
}

} // namespace sluice::ctrl
