#ifndef HERALD_COPENSSLCRYPTO_SHIM_H
#define HERALD_COPENSSLCRYPTO_SHIM_H
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#endif
